"""The relay both ends of the TCP/443 fallback share: datagrams between a local UDP socket and
a WebSocket, framed (sidecar.framing), several to a message when they come faster than the
stream takes them.

Datagrams are datagrams: when the stream falls behind, the queue drops what does not fit, as a
congested network would, and WireGuard and TCP inside the tunnel recover as they do over UDP.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

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


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        self.source: Address | None = None  # where the last datagram came from
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.source = (addr[0], addr[1])
        if len(data) > MAX_DATAGRAM:
            self.dropped += 1  # not WireGuard's (sidecar.framing): the stream would refuse it
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("the relay's UDP socket: %r", exc)  # e.g. nothing listening yet: UDP shrugs


async def open_datagrams(
    local: Address | None = None, remote: Address | None = None
) -> tuple[asyncio.DatagramTransport, Datagrams]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Datagrams, local_addr=local, remote_addr=remote
    )
    return transport, protocol


async def pump(
    ws: WebSocket,
    transport: asyncio.DatagramTransport,
    datagrams: Datagrams,
    reply_to: Callable[[], Address | None] | None = None,
) -> None:
    """Until the stream ends or breaks the framing. `reply_to`: where the stream's datagrams go
    (None: a connected socket's own peer; a callable returning None: nowhere known yet)."""
    up = asyncio.create_task(_up(ws, datagrams))
    down = asyncio.create_task(_down(ws, transport, reply_to))
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
    transport: asyncio.DatagramTransport,
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
            transport.sendto(datagram, target)
