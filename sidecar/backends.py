"""Which backend drives a WireGuard interface, and opening it with that backend.

The one module that knows every backend (`sidecar.kernel`, `sidecar.userspace`); they and their
callers share the types of `sidecar.device`, which knows none of them.
"""

from collections.abc import Callable

from sidecar import kernel, links, userspace
from sidecar.device import (
    Backend,
    BackendChoice,
    Device,
    DeviceError,
    Existing,
    KernelUnsupported,
)


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
