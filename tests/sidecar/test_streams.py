"""The TCP/443 fallback's two ends on loopback: the node's stream handler (sidecar.streamnode,
in the sidecar's real aiohttp app) and the site's StreamLink, with a UDP echo server standing in
for the node's WireGuard port and a UDP socket for the site's wireguard-go. (In the tunnel the
gateway's HTTPS carries the WebSocket between them; tests/sidecar/test_fallback.py.)"""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from core.tunnels import TUNNEL_PATH
from sidecar.api import make_app
from sidecar.backoff import Backoff
from sidecar.framing import HEADER, MAX_DATAGRAM, Decoder, encode
from sidecar.streamlink import StreamLink
from sidecar.streamnode import SITE_PARAMETER, Streams

SECRET = "the-site-secret"


def run[T](work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(work(), 30))


class Echo(asyncio.DatagramProtocol):
    """The node's WireGuard, as far as the relay can tell: answers every datagram."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sources.add((addr[0], addr[1]))
        self.transport.sendto(b"echo:" + data, addr)


def register(*_args: str) -> dict[str, Any]:
    return {}


@asynccontextmanager
async def node(port: int = 0) -> AsyncIterator[tuple[str, Streams, Echo]]:
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    wireguard_port = transport.get_extra_info("sockname")[1]
    streams = Streams(lambda site, secret: (site, secret) == ("home", SECRET), wireguard_port)
    runner = web.AppRunner(make_app(register, streams))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{bound}", streams, echo
    finally:
        await runner.cleanup()
        transport.close()


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def exchange(link: StreamLink, wireguard: socket.socket, data: bytes) -> bytes:
    """What the site's WireGuard gets back for a datagram it sends to the link's endpoint."""
    host, port = link.endpoint.split(":")
    loop = asyncio.get_running_loop()
    for _ in range(50):  # UDP: the first may go before the stream is through
        wireguard.sendto(data, (host, int(port)))
        try:
            async with asyncio.timeout(0.2):
                return await loop.sock_recv(wireguard, 4096)
        except TimeoutError:
            continue
    raise AssertionError("no answer through the stream")


def udp_socket() -> socket.socket:
    made = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    made.bind(("127.0.0.1", 0))
    made.setblocking(False)
    return made


def test_datagrams_cross_the_stream_both_ways_and_the_node_sees_one_local_endpoint() -> None:
    async def scenario() -> None:
        async with node() as (url, streams, echo), aiohttp.ClientSession() as http:
            link = StreamLink(url, "home", SECRET, "test")
            await link.start(http)
            with udp_socket() as wireguard:
                assert await exchange(link, wireguard, b"hello") == b"echo:hello"
                big = b"x" * (MAX_DATAGRAM - len(b"echo:"))  # the answer is the largest frame
                assert await exchange(link, wireguard, big) == b"echo:" + big
            assert link.connected
            (endpoint,) = {f"{host}:{port}" for host, port in echo.sources}
            assert streams.endpoints == {"home": endpoint}
            assert streams.transport_of("home", endpoint) == "tcp"
            assert streams.transport_of("home", "198.51.100.7:51820") == "udp"
            link.close()
            await until(lambda: not streams.endpoints)

    run(scenario)


def test_a_wrong_secret_or_site_gets_401_and_no_socket() -> None:
    async def scenario() -> None:
        async with node() as (url, streams, _echo), aiohttp.ClientSession() as http:
            for headers, params in (
                ({"authorization": "Bearer wrong"}, {SITE_PARAMETER: "home"}),
                ({"authorization": f"Bearer {SECRET}"}, {SITE_PARAMETER: "office"}),
                ({"authorization": f"Bearer {SECRET}"}, {}),
                ({}, {SITE_PARAMETER: "home"}),
            ):
                async with http.get(
                    url + TUNNEL_PATH,
                    params=params,
                    headers={
                        **headers,
                        "connection": "upgrade",
                        "upgrade": "websocket",
                        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
                        "sec-websocket-version": "13",
                    },
                ) as response:
                    assert response.status == 401
                    assert response.headers["www-authenticate"] == "Bearer"
            link = StreamLink(url, "home", "wrong", "test")
            link.backoff = Backoff(initial=0.05, maximum=0.1)
            await link.start(http)
            await asyncio.sleep(0.5)
            assert not link.connected
            assert streams.endpoints == {}
            link.close()

    run(scenario)


def test_an_oversized_frame_closes_the_stream() -> None:
    async def scenario() -> None:
        async with node() as (url, streams, echo), aiohttp.ClientSession() as http:
            headers = {"authorization": f"Bearer {SECRET}"}
            address = url + TUNNEL_PATH
            async with http.ws_connect(address, headers=headers, params={"site": "home"}) as ws:
                await ws.send_bytes(encode(b"one") + encode(b"two")[:3])  # a frame cut in two
                await ws.send_bytes(encode(b"two")[3:])
                decoder, answers = Decoder(), list[bytes]()
                while len(answers) < 2:  # one message or two: the relay batches what is ready
                    answers += decoder.feed(await ws.receive_bytes())
                assert answers == [b"echo:one", b"echo:two"]
                await ws.send_bytes(HEADER.pack(MAX_DATAGRAM + 1) + b"x")
                closing = await ws.receive()
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await until(lambda: not streams.endpoints)
            assert len(echo.sources) == 1

    run(scenario)


def test_the_site_end_comes_back_by_itself_when_the_node_returns() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with node() as (url, _streams, _echo):
                port = int(url.rsplit(":", 1)[1])
                link = StreamLink(url, "home", SECRET, "test")
                link.backoff = Backoff(initial=0.05, maximum=0.2)
                await link.start(http)
                with udp_socket() as wireguard:
                    assert await exchange(link, wireguard, b"before") == b"echo:before"
            await until(lambda: not link.connected)
            async with node(port) as (_url, streams, _echo):
                with udp_socket() as wireguard:
                    assert await exchange(link, wireguard, b"after") == b"echo:after"
                assert link.connected
                assert "home" in streams.endpoints
            link.close()

    run(scenario)


def test_a_site_the_policy_dropped_loses_its_stream() -> None:
    async def scenario() -> None:
        async with node() as (url, streams, _echo), aiohttp.ClientSession() as http:
            link = StreamLink(url, "home", SECRET, "test")
            await link.start(http)
            await until(lambda: "home" in streams.endpoints)
            streams.keep_only({"home", "office"})
            await asyncio.sleep(0.2)
            assert "home" in streams.endpoints
            streams.keep_only({"office"})
            await until(lambda: not streams.endpoints)
            link.close()

    run(scenario)
