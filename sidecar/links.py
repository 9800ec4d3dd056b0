"""The interface's link state, addresses and routes, through pyroute2 (rtnetlink)."""

import errno
import threading
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from sidecar.device import DeviceError, Existing, KernelUnsupported

MTU = 1420  # WireGuard's default: 1500 minus its 80-byte overhead over IPv6


def netlink[T](work: Callable[[], T]) -> T:
    """Run pyroute2 work in a thread of its own: its synchronous API drives an event loop and
    refuses to run inside a running one (the sidecar's). A new thread per call, because a thread
    starts in the network namespace of the one that made it (the tests enter namespaces)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name="netlink")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def index_of(interface: str) -> int | None:
    return netlink(lambda: _index_of(interface))


def _index_of(interface: str) -> int | None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
    return int(found[0]) if found else None


def existing_kind(interface: str) -> Existing:
    return netlink(lambda: _existing_kind(interface))


def _existing_kind(interface: str) -> Existing:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            return "none"
        (link,) = ipr.get_links(found[0])
    info = link.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    if kind == "wireguard":
        return "wireguard"
    if kind == "tun":
        return "userspace"
    return "other"


def create_wireguard_link(interface: str) -> None:
    def create() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname=interface, kind="wireguard")

    try:
        netlink(create)
    except NetlinkError as error:
        if error.code in (errno.EOPNOTSUPP, errno.ENOENT):
            raise KernelUnsupported(f"no WireGuard kernel module: {error}") from None
        raise DeviceError(f"cannot create {interface}: {error}") from None


def delete(interface: str) -> None:
    netlink(lambda: _delete(interface))


def _delete(interface: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if found:
            ipr.link("del", index=found[0])


def bring_up(interface: str, address: IPv4Interface, routes: tuple[IPv4Network, ...] = ()) -> None:
    """Exactly this address on the interface, the link up, and routes to `routes` through it.
    Safe to repeat: what is already there stays."""
    netlink(lambda: _bring_up(interface, address, routes))


def _bring_up(interface: str, address: IPv4Interface, routes: tuple[IPv4Network, ...]) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            raise DeviceError(f"interface {interface} is gone")
        index = found[0]
        present = {
            (a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)
        }
        wanted = (str(address.ip), address.network.prefixlen)
        for ip, prefix in present - {wanted}:
            ipr.addr("del", index=index, address=ip, prefixlen=prefix)
        if wanted not in present:
            ipr.addr("add", index=index, address=wanted[0], prefixlen=wanted[1])
        ipr.link("set", index=index, state="up", mtu=MTU)
        for network in routes:
            ipr.route("replace", dst=str(network), oif=index)


def has_address(interface: str, address: IPv4Address) -> bool:
    return netlink(lambda: _has_address(interface, address))


def _has_address(interface: str, address: IPv4Address) -> bool:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            return False
        return any(
            a.get("IFA_ADDRESS") == str(address) for a in ipr.get_addr(index=found[0], family=2)
        )
