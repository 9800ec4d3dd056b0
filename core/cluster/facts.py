"""What a node reports about itself that no single service of the gateway holds: the sidecar's
WireGuard key (read from the key file the sidecar keeps in state_dir, which the gateway shares),
and the digest of the users.yaml it serves."""

import base64
import binascii
import contextlib
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.auth.users import UsersSource
from core.cluster.documents import digest_of
from core.cluster.records import DocumentState, WireGuardFacts
from core.files import write_atomically
from core.settings import Settings


def machine_id(state_dir: Path) -> str:
    """A random id made once per state_dir (`node-id`): what tells this node's processes from
    another machine's under the same name. Not a secret."""
    path = state_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):  # another process made it first: theirs stands
        write_atomically(path, secrets.token_hex(16).encode(), 0o644, exclusive=True)
    return path.read_text().strip()


def sidecar_key_file(state_dir: Path) -> Path:
    return state_dir / "sidecar" / "node.key"  # sidecar.node: the interface's private key


def wireguard_public_key(state_dir: Path) -> str | None:
    """The public half (base64, as `wg` shows it); None until the sidecar has made its key."""
    try:
        raw = base64.b64decode(sidecar_key_file(state_dir).read_text().strip(), validate=True)
        private = X25519PrivateKey.from_private_bytes(raw)
    except (OSError, ValueError, binascii.Error):
        return None
    return base64.b64encode(
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()


def wireguard_facts(settings: Settings) -> WireGuardFacts:
    wireguard = settings.wireguard
    endpoint = wireguard.endpoint
    if endpoint is None and settings.node.url is not None:
        host = urlsplit(settings.node.url).hostname or ""
        endpoint = (
            f"[{host}]:{wireguard.listen_port}"
            if ":" in host
            else f"{host}:{wireguard.listen_port}"
        )
    return WireGuardFacts(
        public_key=wireguard_public_key(settings.state_dir),
        endpoint=endpoint,
        subnet=str(wireguard.subnet),
    )


class UsersDigest:
    """The digest of the users.yaml a UsersSource serves: taken from the file whenever the source
    loads a new copy, kept while a later edit is refused."""

    def __init__(self, users: UsersSource) -> None:
        self.users = users
        self._generation = -1
        self._digest: str | None = None

    def state(self) -> DocumentState:
        self.users.current()  # notice an edit even while no request asks
        if self.users.generation != self._generation:
            self._generation = self.users.generation
            try:
                self._digest = digest_of(self.users.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                self._digest = None  # no file: the node serves no users
        return DocumentState(digest=self._digest, error=self.users.last_error)
