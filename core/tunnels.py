"""What the gateway and the sidecar share about sites: where each site's tunnel ends, whether it
is online, and which tunnel port carries which target.

The sidecar owns this knowledge and writes it to `<state_dir>/sites.json` (atomically, only when
it changes); the gateway polls the file's metadata with its policy and swaps in a new
`SiteTable`. A request pays one dict lookup; nothing on the request path talks to the sidecar.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from core.balance import TargetKey, target_key
from core.policy.compiled import Policy
from core.policy.model import PolicyFile, Resource, Target

type Protocol = Literal["tcp", "udp"]
type ForwardKey = tuple[Protocol, str, int]  # protocol, target host, target port

# The site agent and the sidecar answer this TCP port on their tunnel addresses: a connection
# that opens proves the tunnel and the process at its far end are alive.
PROBE_PORT = 51820
SITE_API_PREFIX = "/.warren/sites/"
REGISTER_PATH = SITE_API_PREFIX + "register"


class Forward(NamedTuple):
    protocol: Protocol
    host: str  # where the site agent connects, as the policy's target says
    target_port: int
    port: int  # what the node connects to on the site's tunnel address

    @property
    def key(self) -> ForwardKey:
        return (self.protocol, self.host, self.target_port)

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


def forward_protocol(resource: Resource) -> Protocol:
    return "udp" if resource.protocol == "udp" else "tcp"


def wanted_forwards(model: PolicyFile, site: str) -> frozenset[ForwardKey]:
    """What the policy asks `site` to carry: every target on it, by protocol."""
    return frozenset(
        (forward_protocol(resource), target.host, target.port)
        for resource in model.resources.values()
        for target in resource.targets
        if target.site == site
    )


@dataclass(frozen=True, slots=True)
class SiteRoute:
    address: str
    online: bool
    ports: Mapping[ForwardKey, int] = field(default_factory=dict)


class SiteTable:
    """The gateway's read-only view of sites.json."""

    __slots__ = ("_sites",)

    def __init__(self, sites: Mapping[str, SiteRoute] | None = None) -> None:
        self._sites: Mapping[str, SiteRoute] = dict(sites or {})

    def __bool__(self) -> bool:
        return bool(self._sites)

    def get(self, site: str) -> SiteRoute | None:
        return self._sites.get(site)

    def resolve(self, target: Target, protocol: Protocol = "tcp") -> tuple[str, int] | None:
        """Where to connect for `target`: itself, or its site's tunnel address and port; None
        while the site is offline or does not carry the target yet."""
        if target.site is None:
            return target.host, target.port
        route = self._sites.get(target.site)
        if route is None or not route.online:
            return None
        port = route.ports.get((protocol, target.host, target.port))
        return None if port is None else (route.address, port)

    def unroutable(self, policy: Policy) -> frozenset[TargetKey]:
        """Targets of the policy that cannot be reached now: their site is offline or unknown."""
        return frozenset(
            target_key(target)
            for resource in policy.resources.values()
            for target in resource.targets
            if target.site is not None
            and self.resolve(target, forward_protocol(resource.model)) is None
        )


def sites_file(state_dir: Path) -> Path:
    return state_dir / "sites.json"


def sidecar_socket(state_dir: Path) -> Path:
    return state_dir / "sidecar.sock"


def encode_sites(sites: Mapping[str, tuple[str, bool, Iterable[Forward]]]) -> bytes:
    """sites.json: for each site its tunnel address, whether it is online, and its forwards."""
    document = {
        "version": 1,
        "sites": {
            name: {
                "address": address,
                "online": online,
                "forwards": [forward.as_dict() for forward in sorted(forwards)],
            }
            for name, (address, online, forwards) in sorted(sites.items())
        },
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def decode_sites(data: bytes) -> SiteTable:
    """Raises ValueError for anything that is not a sites.json this version wrote."""
    try:
        document: Any = json.loads(data)
        if document.get("version") != 1:
            raise ValueError(f"unknown sites.json version {document.get('version')!r}")
        routes = {
            str(name): SiteRoute(
                address=str(entry["address"]),
                online=entry["online"] is True,
                ports={
                    (parse_protocol(f["protocol"]), str(f["host"]), int(f["target_port"])): int(
                        f["port"]
                    )
                    for f in entry["forwards"]
                },
            )
            for name, entry in document["sites"].items()
        }
    except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a sites.json: {error!r}") from None
    return SiteTable(routes)


def parse_protocol(value: object) -> Protocol:
    if value == "tcp" or value == "udp":
        return value
    raise ValueError(f"{value!r} is not tcp or udp")


def load_sites(path: Path) -> SiteTable:
    return decode_sites(path.read_bytes())
