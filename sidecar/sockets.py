"""Listening sockets on a tunnel address, and the probe that proves a tunnel alive."""

import asyncio
import socket

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def bound(
    address: str, port: int, kind: socket.SocketKind, device: str | None = None
) -> socket.socket:
    """A socket on the tunnel address. IP_FREEBIND lets it bind while the interface is being
    (re)made; SO_BINDTODEVICE, when a device is named, keeps out packets for that address that
    arrive on any other interface, so nothing outside the tunnel reaches it."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        if device is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def reachable(address: str, port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def answer_probes(address: str, port: int, device: str | None = None) -> asyncio.Server:
    async def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(close, sock=bound(address, port, socket.SOCK_STREAM, device))
