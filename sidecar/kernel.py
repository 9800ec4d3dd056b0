"""The kernel backend: the WireGuard module, configured over generic netlink with pyroute2.

Not exercised on machines without the module (the tests' CI among them); `sidecar.backends` picks
it where it works.
"""

from collections.abc import Sequence
from typing import Any

from pyroute2 import WireGuard

from sidecar import links
from sidecar.device import Backend, Peer, PeerStatus


class KernelDevice:
    backend: Backend = "kernel"

    def __init__(self, interface: str) -> None:
        self.interface = interface

    def configure(self, private_key: str, listen_port: int | None, peers: Sequence[Peer]) -> None:
        def set_device() -> None:
            with WireGuard() as wg:
                wg.set(self.interface, private_key=private_key, listen_port=listen_port)

        links.netlink(set_device)
        wanted = {peer.public_key for peer in peers}
        stale = [p.public_key for p in self.peers() if p.public_key not in wanted]
        self.set_peers(peers, stale)

    def set_peers(self, peers: Sequence[Peer], remove: Sequence[str] = ()) -> None:
        def set_all() -> None:
            with WireGuard() as wg:
                for public_key in remove:
                    wg.set(self.interface, peer={"public_key": public_key, "remove": True})
                for peer in peers:
                    wg.set(self.interface, peer=_netlink_peer(peer))

        links.netlink(set_all)

    def peers(self) -> list[PeerStatus]:
        def info() -> list[Any]:
            with WireGuard() as wg:
                return list(wg.info(self.interface))

        messages = links.netlink(info)
        return [
            _status(peer) for message in messages for peer in message.get("WGDEVICE_A_PEERS") or ()
        ]

    def alive(self) -> bool:
        return links.index_of(self.interface) is not None

    def close(self) -> None:
        links.delete(self.interface)


def _netlink_peer(peer: Peer) -> dict[str, Any]:
    found: dict[str, Any] = {
        "public_key": peer.public_key,
        "replace_allowed_ips": True,
        "allowed_ips": list(peer.allowed_ips),
    }
    if peer.endpoint is not None:
        host, _, port = peer.endpoint.rpartition(":")
        found["endpoint_addr"] = host.strip("[]")
        found["endpoint_port"] = int(port)
    if peer.keepalive is not None:
        found["persistent_keepalive"] = peer.keepalive
    return found


def _status(peer: Any) -> PeerStatus:
    def value(name: str) -> Any:
        return peer.get(name)

    endpoint = value("WGPEER_A_ENDPOINT")
    handshake = value("WGPEER_A_LAST_HANDSHAKE_TIME")
    allowed = value("WGPEER_A_ALLOWEDIPS") or ()
    seconds = handshake["tv_sec"] + handshake["tv_nsec"] / 1e9 if handshake else 0.0
    return PeerStatus(
        public_key=_text(value("WGPEER_A_PUBLIC_KEY")["value"]),
        endpoint=f"{endpoint['addr']}:{endpoint['port']}" if endpoint else None,
        last_handshake=seconds or None,
        rx_bytes=int(value("WGPEER_A_RX_BYTES") or 0),
        tx_bytes=int(value("WGPEER_A_TX_BYTES") or 0),
        allowed_ips=tuple(entry["addr"] for entry in allowed if "addr" in entry),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
