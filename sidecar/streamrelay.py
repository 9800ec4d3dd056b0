"""The relay both ends of the TCP/443 fallback share: datagrams between a local UDP socket and
a WebSocket, framed (sidecar.framing), several to a message when they come faster than the
stream takes them.

Datagrams are datagrams: when the stream falls behind, the queue drops what does not fit, as a
congested network would, and WireGuard and TCP inside the tunnel recover as they do over UDP.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import aiohttp

from sidecar.framing import MAX_DATAGRAM, Decoder, FramingError, encode_all

log = logging.getLogger("warren.stream")

QUEUE = 1024  # datagrams waiting for the stream; about 1.5 MB of WireGuard packets
BATCH = 64  # datagrams in one WebSocket message at most

type Address = tuple[str, int]


class WebSocket(Protocol):
    """What the relay needs of aiohttp's server and client WebSockets alike."""

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    def __aiter__(self) -> AsyncIterator[aiohttp.WSMessage]: ...


class Datagrams:
    """A non-blocking UDP socket read in bursts: every datagram waiting in the kernel at each
    wake-up (up to BATCH), where asyncio's datagram transport reads one per loop iteration. The
    burst is what lets the stream carry many packets to a message; the gateway's cost is per
    message far more than per byte."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        self.source: Address | None = None  # where the last datagram came from
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def sockname(self) -> Address:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def _readable(self) -> None:
        for _ in range(BATCH):
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ICMP port unreachable on a connected socket
                log.debug("the relay's UDP socket: %r", error)
                return
            self._received(data, (addr[0], addr[1]))

    def _received(self, data: bytes, addr: Address) -> None:
        self.source = addr
        if len(data) > MAX_DATAGRAM:
            self.dropped += 1  # not WireGuard's (sidecar.framing): the stream would refuse it
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1

    def sendto(self, data: bytes, addr: Address | None) -> None:
        """A datagram out, or dropped when the socket cannot take it now: UDP's way."""
        try:
            if addr is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, addr)
        except OSError:
            self.dropped += 1

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def open_datagrams(local: Address, remote: Address | None = None) -> Datagrams:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(local)
        if remote is not None:
            sock.connect(remote)
        return Datagrams(sock)
    except BaseException:
        sock.close()
        raise


async def pump(
    ws: WebSocket,
    datagrams: Datagrams,
    reply_to: Callable[[], Address | None] | None = None,
) -> None:
    """Until the stream ends or breaks the framing. `reply_to`: where the stream's datagrams go
    (None: a connected socket's own peer; a callable returning None: nowhere known yet)."""
    up = asyncio.create_task(_up(ws, datagrams))
    down = asyncio.create_task(_down(ws, datagrams, reply_to))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        for task in (up, down):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task  # a failure other than the connection's is the caller's


async def _up(ws: WebSocket, datagrams: Datagrams) -> None:
    queue = datagrams.queue
    while True:
        batch = [await queue.get()]
        while len(batch) < BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        await ws.send_bytes(encode_all(batch))


async def _down(
    ws: WebSocket,
    datagrams: Datagrams,
    reply_to: Callable[[], Address | None] | None,
) -> None:
    decoder = Decoder()
    async for message in ws:
        if message.type != aiohttp.WSMsgType.BINARY:
            return  # close, error, or text that is not ours
        try:
            found = decoder.feed(message.data)
        except FramingError as error:
            log.warning("closing a tunnel stream: %s", error)
            return
        target = reply_to() if reply_to is not None else None
        if reply_to is not None and target is None:
            continue  # the local WireGuard has not spoken yet: nowhere to deliver
        for datagram in found:
            datagrams.sendto(datagram, target)
