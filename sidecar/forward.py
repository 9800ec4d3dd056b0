"""The site agent's forwarders: TCP and UDP from its tunnel address to the local targets.

Each listener is bound to the tunnel address and to the WireGuard interface itself, so nothing
arriving any other way reaches it. TCP is relayed with asyncio protocols (no per-chunk task;
flow control pauses the faster side), UDP per client address with idle sessions expiring.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any

from core.tunnels import Forward
from sidecar.sockets import bound

log = logging.getLogger("warren.site")

CONNECT_TIMEOUT = 10.0
UDP_IDLE = 120.0  # seconds without a datagram before a UDP session is forgotten
UDP_SESSIONS = 4096  # per forward; beyond it new clients wait for old ones to expire
UDP_QUEUE = 64  # datagrams held while a session's socket is being opened


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it reads, the other side writes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.got_eof = False
        self.early: list[
            bytes
        ] = []  # read before the other side was linked (servers that speak first)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.early.append(data)
            return
        self.peer.transport.write(data)

    def link(self, peer: "_Pipe") -> None:
        self.peer = peer
        assert peer.transport is not None
        for data in self.early:
            peer.transport.write(data)
        self.early.clear()

    def eof_received(self) -> bool:
        self.got_eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        if peer.got_eof:  # both ways finished: done
            peer.transport.close()
            return False
        return True  # half-closed: the other way may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Inbound(_Pipe):
    """A connection from the node; reading waits until the target's connection is open."""

    def __init__(self, forward: Forward, counter: "TcpForwarder") -> None:
        super().__init__()
        self.forward = forward
        self.counter = counter
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self.counter.active += 1
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _transport, outbound = await loop.create_connection(
                    _Pipe, self.forward.host, self.forward.target_port
                )
        except (OSError, TimeoutError) as error:
            log.info(
                "forward %s/%d: %s:%d unreachable: %s",
                self.forward.protocol,
                self.forward.port,
                self.forward.host,
                self.forward.target_port,
                error,
            )
            if self.transport is not None:
                self.transport.close()
            return
        assert self.transport is not None
        assert outbound.transport is not None
        if self.transport.is_closing():
            outbound.transport.close()
            return
        self.link(outbound)
        outbound.link(self)
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.counter.active -= 1
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        super().connection_lost(exc)


class TcpForwarder:
    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self.active = 0
        self._server: asyncio.Server | None = None

    async def start(self, address: str, device: str | None) -> None:
        sock = bound(address, self.forward.port, socket.SOCK_STREAM, device)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Inbound(self.forward, self), sock=sock
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


class _Session(asyncio.DatagramProtocol):
    """One client's datagrams to the target and the target's answers back to it."""

    def __init__(self, relay: "UdpForwarder", client: Any) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.queue: list[bytes] = []
        self.idle = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport
        for data in self.queue:
            transport.sendto(data)
        self.queue.clear()

    def send(self, data: bytes) -> None:
        self.idle = 0.0
        if self.transport is not None:
            self.transport.sendto(data)
        elif len(self.queue) < UDP_QUEUE:
            self.queue.append(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.idle = 0.0
        if self.relay.transport is not None:
            self.relay.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp forward %d: %s", self.relay.forward.port, exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UdpForwarder(asyncio.DatagramProtocol):
    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Any, _Session] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def active(self) -> int:
        return len(self.sessions)

    async def start(self, address: str, device: str | None) -> None:
        sock = bound(address, self.forward.port, socket.SOCK_DGRAM, device)
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._sweeper = loop.create_task(self._sweep())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if len(self.sessions) >= UDP_SESSIONS:
                return
            session = self.sessions[addr] = _Session(self, addr)
            asyncio.get_running_loop().create_task(self._open(session))
        session.send(data)

    async def _open(self, session: _Session) -> None:
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: session, remote_addr=(self.forward.host, self.forward.target_port)
            )
        except OSError as error:
            log.info("udp forward %d: %s", self.forward.port, error)
            self.sessions.pop(session.client, None)

    async def _sweep(self) -> None:
        step = UDP_IDLE / 4
        while True:
            await asyncio.sleep(step)
            for client, session in list(self.sessions.items()):
                session.idle += step
                if session.idle >= UDP_IDLE:
                    session.close()
                    del self.sessions[client]

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()


type Forwarder = TcpForwarder | UdpForwarder


class Forwarders:
    """The running forwarders, made to match the node's list on every registration."""

    def __init__(self) -> None:
        self._running: dict[Forward, Forwarder] = {}
        self._place: tuple[str, str | None, int | None] | None = None

    @property
    def forwards(self) -> list[Forward]:
        return sorted(self._running)

    def connections(self) -> int:
        return sum(forwarder.active for forwarder in self._running.values())

    async def reconcile(
        self, address: str, device: str | None, index: int | None, forwards: Sequence[Forward]
    ) -> None:
        """Listen for exactly `forwards` on `address`. A new address or a remade interface (a new
        index: sockets bound to the old one hear nothing) restarts them all."""
        place = (address, device, index)
        if place != self._place:
            self.close()
            self._place = place
        wanted = set(forwards)
        for forward in set(self._running) - wanted:
            self._running.pop(forward).close()
        for forward in sorted(wanted - set(self._running)):
            forwarder: Forwarder = (
                TcpForwarder(forward) if forward.protocol == "tcp" else UdpForwarder(forward)
            )
            try:
                await forwarder.start(address, device)
            except OSError as error:
                log.error("cannot forward %s port %d: %s", forward.protocol, forward.port, error)
                continue
            self._running[forward] = forwarder
            log.info(
                "forwarding %s %s:%d -> %s:%d",
                forward.protocol,
                address,
                forward.port,
                forward.host,
                forward.target_port,
            )

    def close(self) -> None:
        for forwarder in self._running.values():
            with contextlib.suppress(Exception):
                forwarder.close()
        self._running.clear()
