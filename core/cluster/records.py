"""What a node says about itself every heartbeat (`warren:cluster:node:<name>`), as JSON.

Other nodes, site agents' registrations and `warren nodes` read it; only its own node writes it.
"""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class WireGuardFacts(Part):
    public_key: str | None = None  # the sidecar's interface key (base64), once it has one
    endpoint: str | None = None  # HOST:PORT where sites send WireGuard packets
    subnet: str | None = None  # the tunnel addresses this node hands out


class DocumentState(Part):
    """The policy or users file this node serves: its digest, and why the last change was refused
    (the node keeps serving the copy with `digest`)."""

    digest: str | None = None
    error: str | None = None


class NodeRecord(Part):
    name: str
    url: str | None = None  # node.url: this node's own origin
    instance: str  # one per running gateway: two processes under one name are told apart
    # One per state_dir: a gateway restarted after a crash takes its own name back at once, while
    # another machine under the same name is refused.
    machine: str = ""
    heartbeat: float  # Unix time of this record
    started: float  # Unix time the gateway started
    wireguard: WireGuardFacts = WireGuardFacts()
    policy: DocumentState = DocumentState()
    users: DocumentState = DocumentState()
    sites_online: tuple[str, ...] = Field(default=())  # sites with a live tunnel to this node
    ready: bool = False
    version: str = ""  # Warren's

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Raises ValueError for anything that is not a record (a foreign or older writer)."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise ValueError(f"not a node record: {error}") from None
