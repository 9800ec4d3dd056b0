"""A WireGuard interface, whichever backend drives it: the types every backend shares.

The kernel module is driven through pyroute2 (generic netlink, `sidecar.kernel`); where it is
missing, wireguard-go provides the interface and is driven through its UAPI socket
(`sidecar.userspace`). Either way pyroute2 manages the interface's addresses, routes and link
state (`sidecar.links`). Which backend drives an interface is `sidecar.backends`' choice; this
module imports none of them, so each backend can import it.
"""

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

type Backend = Literal["kernel", "userspace"]
type BackendChoice = Literal["auto", "kernel", "userspace"]


class DeviceError(RuntimeError):
    pass


class KernelUnsupported(DeviceError):
    """This kernel has no WireGuard module (creating the link fails with EOPNOTSUPP)."""


class Peer(NamedTuple):
    public_key: str
    allowed_ips: tuple[str, ...]
    endpoint: str | None = None  # IP:port; UAPI and netlink take addresses, never names
    keepalive: int | None = None


class PeerStatus(NamedTuple):
    public_key: str
    endpoint: str | None
    last_handshake: float | None  # seconds since the epoch; None: never
    rx_bytes: int
    tx_bytes: int
    allowed_ips: tuple[str, ...] = ()


class Device(Protocol):
    interface: str
    backend: Backend

    def configure(self, private_key: str, listen_port: int | None, peers: Sequence[Peer]) -> None:
        """Set the key and port, and make the peers exactly these."""

    def set_peers(self, peers: Sequence[Peer], remove: Sequence[str] = ()) -> None:
        """Add or update these peers, remove those public keys; leave the others alone."""

    def peers(self) -> list[PeerStatus]: ...

    def alive(self) -> bool: ...

    def close(self) -> None:
        """Take the interface down and away."""


type Existing = Literal["none", "wireguard", "userspace", "other"]
