"""The site agent's forwarders, on loopback (in the tunnel they bind the tunnel address and its
interface; the relaying is the same)."""

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from core.tunnels import Forward
from demo.processes import free_port
from sidecar.forward import Forwarders

type Echo = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()  # a half-close travels back too
    await writer.drain()
    writer.close()


async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 ready\n")  # the server speaks first
    await writer.drain()
    writer.close()


async def serving(handler: Echo, host: str = "127.0.0.1") -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, host, 0)
    return server, server.sockets[0].getsockname()[1]


def run[T](work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(work(), 30))


async def forwarding(
    target_port: int, protocol: str = "tcp", target_host: str = "127.0.0.1"
) -> tuple[Forwarders, int]:
    forwarders = Forwarders()
    port = free_port(socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM)
    forward = Forward(protocol, target_host, target_port, port)  # type: ignore[arg-type]
    await forwarders.reconcile("127.0.0.1", None, None, [forward])
    return forwarders, port


def test_tcp_is_relayed_both_ways_with_half_close() -> None:
    async def work() -> bytes:
        server, target = await serving(echo)
        forwarders, port = await forwarding(target)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = bytes(range(256)) * 8192  # 2 MiB: flow control has to work
        writer.write(payload)
        writer.write_eof()
        received = await reader.read(-1)  # until the echo's own EOF
        writer.close()
        forwarders.close()
        server.close()
        assert received == payload
        return received

    assert len(run(work)) == 2 * 1024 * 1024


def test_a_server_that_speaks_first() -> None:
    async def work() -> bytes:
        server, target = await serving(greet)
        forwarders, port = await forwarding(target)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = await reader.read(-1)
        writer.close()
        forwarders.close()
        server.close()
        return greeting

    assert run(work) == b"220 ready\n"


def test_an_unreachable_target_closes_the_connection() -> None:
    async def work() -> bytes:
        forwarders, port = await forwarding(free_port())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await reader.read(-1)
        writer.close()
        assert forwarders.connections() == 0
        forwarders.close()
        return data

    assert run(work) == b""


def test_many_concurrent_connections_are_counted_and_released() -> None:
    async def work() -> None:
        server, target = await serving(echo)
        forwarders, port = await forwarding(target)
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
        for index, (reader, writer) in enumerate(clients):
            writer.write(f"{index}".encode())
            assert await reader.read(100) == f"{index}".encode()
        assert forwarders.connections() == 100
        for _reader, writer in clients:
            writer.close()
            await writer.wait_closed()
        while forwarders.connections():
            await asyncio.sleep(0.01)
        forwarders.close()
        server.close()

    run(work)


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


def test_udp_keeps_a_session_per_client() -> None:
    async def work() -> list[bytes]:
        loop = asyncio.get_running_loop()
        target, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("127.0.0.1", 0))
        target_port = target.get_extra_info("sockname")[1]
        forwarders, port = await forwarding(target_port, "udp")
        replies = []
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        for index, client in enumerate(sockets):
            client.setblocking(False)
            await loop.sock_sendto(client, f"c{index}".encode(), ("127.0.0.1", port))
        for client in sockets:
            replies.append((await loop.sock_recvfrom(client, 100))[0])
            client.close()
        assert forwarders.connections() == 3
        forwarders.close()
        target.close()
        return replies

    assert run(work) == [b"echo:c0", b"echo:c1", b"echo:c2"]


def test_a_site_reaches_ipv6_targets_over_tcp_and_udp() -> None:
    # The tunnel's own addresses are IPv4; what the agent connects to on the site may be IPv6.
    async def work() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        server, tcp_port = await serving(echo, "::1")
        udp, _ = await loop.create_datagram_endpoint(_UdpEcho, local_addr=("::1", 0))
        tcp_forwarders, tcp = await forwarding(tcp_port, "tcp", "::1")
        udp_forwarders, udp_port = await forwarding(udp.get_extra_info("sockname")[1], "udp", "::1")
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
        writer.write(b"six")
        writer.write_eof()
        over_tcp = await reader.read(-1)
        writer.close()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        await loop.sock_sendto(client, b"six", ("127.0.0.1", udp_port))
        over_udp = (await loop.sock_recvfrom(client, 100))[0]
        client.close()
        for forwarders in (tcp_forwarders, udp_forwarders):
            forwarders.close()
        server.close()
        udp.close()
        return over_tcp, over_udp

    assert run(work) == (b"six", b"echo:six")


def test_reconcile_adds_and_removes_listeners() -> None:
    async def work() -> None:
        server, target = await serving(echo)
        forwarders = Forwarders()
        first = Forward("tcp", "127.0.0.1", target, free_port())
        second = Forward("tcp", "127.0.0.1", target, free_port())
        await forwarders.reconcile("127.0.0.1", None, None, [first, second])
        assert forwarders.forwards == sorted([first, second])
        await forwarders.reconcile("127.0.0.1", None, None, [second])
        assert forwarders.forwards == [second]
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", first.port)
        _reader, writer = await asyncio.open_connection("127.0.0.1", second.port)
        writer.close()
        forwarders.close()
        server.close()

    run(work)
