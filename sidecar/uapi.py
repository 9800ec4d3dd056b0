"""wireguard-go's userspace API: a Unix socket per interface, `key=value` lines.

The protocol is documented at https://www.wireguard.com/xplatform/. Spoken directly rather than
through `wg`: no process per change, errors come back as errno values, and the same Peer and
PeerStatus types serve the kernel backend.
"""

import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from sidecar import wgkeys
from sidecar.device import DeviceError, Peer, PeerStatus

SOCKET_DIR = Path("/var/run/wireguard")


def socket_path(interface: str) -> Path:
    return SOCKET_DIR / f"{interface}.sock"


def exchange(path: Path, request: str, timeout: float = 5.0) -> list[tuple[str, str]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(request.encode())
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    pairs = [line.partition("=")[::2] for line in data.decode().splitlines() if line]
    errno = next((value for key, value in pairs if key == "errno"), None)
    if errno is None:
        raise DeviceError(f"{path}: no answer from wireguard-go")
    if errno != "0":
        raise DeviceError(f"{path}: wireguard-go refused the change (errno {errno})")
    return [(key, value) for key, value in pairs if key != "errno"]


def set_request(
    *,
    private_key: str | None = None,
    listen_port: int | None = None,
    replace_peers: bool = False,
    peers: Iterable[Peer] = (),
    remove: Iterable[str] = (),
) -> str:
    lines = ["set=1"]
    if private_key is not None:
        lines.append(f"private_key={wgkeys.to_hex(private_key)}")
    if listen_port is not None:
        lines.append(f"listen_port={listen_port}")
    if replace_peers:
        lines.append("replace_peers=true")
    for public_key in remove:
        lines += [f"public_key={wgkeys.to_hex(public_key)}", "remove=true"]
    for peer in peers:
        lines.append(f"public_key={wgkeys.to_hex(peer.public_key)}")
        if peer.endpoint is not None:
            lines.append(f"endpoint={peer.endpoint}")
        if peer.keepalive is not None:
            lines.append(f"persistent_keepalive_interval={peer.keepalive}")
        lines.append("replace_allowed_ips=true")
        lines += [f"allowed_ip={network}" for network in peer.allowed_ips]
    return "\n".join(lines) + "\n\n"


def parse_peers(pairs: Sequence[tuple[str, str]]) -> list[PeerStatus]:
    peers: list[PeerStatus] = []
    current: dict[str, str] = {}
    allowed: list[str] = []

    def finish() -> None:
        if current:
            peers.append(_status(current, allowed))

    for key, value in pairs:
        if key == "public_key":
            finish()
            current, allowed = {"public_key": value}, []
        elif key == "allowed_ip":
            allowed.append(value)
        elif current:
            current[key] = value
    finish()
    return peers


def _status(fields: dict[str, str], allowed: list[str]) -> PeerStatus:
    seconds = int(fields.get("last_handshake_time_sec", "0"))
    nanos = int(fields.get("last_handshake_time_nsec", "0"))
    endpoint = fields.get("endpoint")
    return PeerStatus(
        public_key=wgkeys.from_hex(fields["public_key"]),
        endpoint=endpoint or None,
        last_handshake=seconds + nanos / 1e9 if seconds else None,
        rx_bytes=int(fields.get("rx_bytes", "0")),
        tx_bytes=int(fields.get("tx_bytes", "0")),
        allowed_ips=tuple(allowed),
    )
