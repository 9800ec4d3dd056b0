"""A WireGuard interface, whichever backend drives it, and the choice of backend.

The kernel module is driven through pyroute2 (generic netlink); where it is missing, wireguard-go
provides the interface and is driven through its UAPI socket. Either way pyroute2 manages the
interface's addresses, routes and link state (`sidecar.links`).
"""

from collections.abc import Callable, Sequence
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


def choose_backend(
    wanted: BackendChoice, existing: Existing, kernel_works: Callable[[], bool]
) -> Backend:
    """Which backend drives the interface. An interface that already exists (a previous run left
    it) is adopted with the backend that made it; otherwise `auto` prefers the kernel module.
    `kernel_works` tries the kernel (creating the link) and is only called when it decides."""
    if existing == "other":
        raise DeviceError("an interface of that name exists and is not a WireGuard interface")
    if existing != "none":
        found: Backend = "kernel" if existing == "wireguard" else "userspace"
        if wanted not in ("auto", found):
            raise DeviceError(
                f"the interface exists and is driven by the {found} backend, "
                f"but wireguard.backend is {wanted}; remove it or change the setting"
            )
        return found
    if wanted == "userspace":
        return "userspace"
    if kernel_works():
        return "kernel"
    if wanted == "kernel":
        raise KernelUnsupported(
            "this kernel has no WireGuard module; set wireguard.backend to auto or userspace "
            "and install wireguard-go"
        )
    return "userspace"


def open_device(interface: str, wanted: BackendChoice) -> Device:
    from sidecar import kernel, links, userspace

    existing = links.existing_kind(interface)
    if existing == "none" and userspace.socket_alive(interface):
        raise DeviceError(
            f"wireguard-go already serves an interface named {interface} in another network "
            "namespace (its UAPI socket directory is shared); choose another interface name"
        )

    def kernel_works() -> bool:
        try:
            links.create_wireguard_link(interface)
        except KernelUnsupported:
            return False
        return True

    backend = choose_backend(wanted, existing, kernel_works)
    if backend == "kernel":
        return kernel.KernelDevice(interface)
    if existing == "userspace":
        return userspace.UserspaceDevice.adopt(interface)
    return userspace.UserspaceDevice.start(interface)
