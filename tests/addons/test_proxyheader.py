"""The PROXY protocol sent to raw TCP and HTTP targets that ask for it, through a real gateway process to
a real server that parses the header (tests/support/proxyserver.py, its own parser)."""

import asyncio
import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from addons.pack import warren_addons
from demo import processes
from tests.addons.test_raw import talk
from tests.support.gateway import GatewayFactory
from tests.support.proxyserver import ProxyProtocolServer
from tests.support.tls import LocalCa
from tests.support.waiting import eventually

warren_addons()


@pytest.fixture
def server() -> Iterator[ProxyProtocolServer]:
    with ProxyProtocolServer() as server:
        yield server


def _policy(port: int, target: int, version: str) -> str:
    return f"""\
version: 1
resources:
  mail:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{host: 127.0.0.1, port: {target}, proxy_protocol: {version}}}]
"""


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_raw_target_sees_the_clients_address(
    version: str, server: ProxyProtocolServer, start_gateway: GatewayFactory
) -> None:
    port = processes.free_port()
    gateway = start_gateway(_policy(port, server.port, version))
    processes.wait_for_port(port, gateway.process)
    answer = talk(port, b"EHLO client\r\n", source="127.0.0.7")
    said, _, rest = answer.partition(b"|")
    src, sport, dst, dport = said.decode().split()
    assert (src, dst, int(dport)) == ("127.0.0.7", "127.0.0.1", port)
    assert 0 < int(sport) <= 65535
    assert rest == b"EHLO client\r\n"  # the client's bytes follow the header, untouched


def test_a_target_without_proxy_protocol_gets_no_header(
    server: ProxyProtocolServer, start_gateway: GatewayFactory
) -> None:
    port = processes.free_port()
    policy = _policy(port, server.port, "v2").replace(", proxy_protocol: v2", "")
    gateway = start_gateway(policy)
    processes.wait_for_port(port, gateway.process)
    assert talk(port, b"GET / HTTP/1.0\r\n\r\n").startswith(b"bad|")


def _http_policy(target: int, version: str, trusted: str = "") -> str:
    return f"""\
version: 1
trusted_proxies: [{trusted}]
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {target}, proxy_protocol: {version}}}]
"""


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_an_http_target_sees_the_clients_address(
    version: str, start_gateway: GatewayFactory
) -> None:
    with ProxyProtocolServer(http=True) as server:
        gateway = start_gateway(_http_policy(server.port, version))
        url = f"http://127.0.0.1:{gateway.port}/"
        with httpx.Client(headers={"host": "app.example"}) as client:
            first, second = client.get(url), client.get(url)
        src, _, dst, dport = first.text.split()
        assert (src, dst, int(dport)) == ("127.0.0.1", "127.0.0.1", gateway.port)
        # One client connection, one client: its connection to the target is kept and reused.
        assert second.text == first.text
        assert len(server.seen) == 1


def test_a_forwarded_client_gets_a_connection_of_its_own(start_gateway: GatewayFactory) -> None:
    with ProxyProtocolServer(http=True) as server:
        gateway = start_gateway(_http_policy(server.port, "v2", trusted="127.0.0.1/32"))
        url = f"http://127.0.0.1:{gateway.port}/"
        with httpx.Client(headers={"host": "app.example"}) as client:
            answers = [
                client.get(url, headers={"x-forwarded-for": ip}).text
                for ip in ("198.51.100.7", "198.51.100.8", "198.51.100.7")
            ]
        assert [answer.split()[0] for answer in answers] == [
            "198.51.100.7",
            "198.51.100.8",
            "198.51.100.7",
        ]
        assert len(server.seen) == 3  # a trusted proxy's connection carries many clients


def test_a_retried_request_brings_the_header_its_new_target_asks_for(
    start_gateway: GatewayFactory,
) -> None:
    # round_robin's first pick is the first target: the closed one. The retry (addons.retry)
    # opens a connection to the second, which must start with that target's header too.
    closed = processes.free_port()
    with ProxyProtocolServer(http=True) as server:
        policy = _http_policy(server.port, "v2").replace(
            "targets: [", f"targets: [{{host: 127.0.0.1, port: {closed}, proxy_protocol: v2}}, "
        )
        gateway = start_gateway(policy)
        with httpx.Client(headers={"host": "app.example"}) as client:
            answer = client.get(f"http://127.0.0.1:{gateway.port}/")
        assert answer.status_code == 200, answer.text
        assert answer.text.split()[0] == "127.0.0.1"
        assert f"127.0.0.1:{closed} failed to connect, trying 127.0.0.1:{server.port}" in (
            gateway.logs()
        )


class _OffersOnlyH2(ssl.SSLContext):
    """httpcore offers `http/1.1` first, which the gateway takes; a proxy speaking HTTP/2 to it
    offers h2 alone."""

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        super().set_alpn_protocols(["h2"])


def test_a_trusted_proxys_concurrent_http2_streams_each_bring_their_own_client(
    tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    # One HTTP/2 connection from a trusted proxy carries different people at once: each request
    # gets a connection of its own to the target, starting with its own client's header, even
    # while another one to the same target is still opening.
    ca = LocalCa.fresh()
    ca.issue(["app.example"], tmp_path / "app.pem")
    context = _OffersOnlyH2(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca.write(tmp_path / "ca.pem"))
    clients = [f"198.51.100.{n}" for n in range(1, 9)]
    with ProxyProtocolServer(http=True) as server:
        policy = _http_policy(server.port, "v2", trusted="127.0.0.1/32")
        gateway = start_gateway(policy, settings=f"certs: [{tmp_path / 'app.pem'}]\n")

        async def ask_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(http2=True, verify=context) as client:
                return await asyncio.gather(
                    *(
                        client.get(
                            f"https://127.0.0.1:{gateway.port}/",
                            headers={"host": "app.example", "x-forwarded-for": ip},
                            extensions={"sni_hostname": "app.example"},
                        )
                        for ip in clients
                    )
                )

        answers = asyncio.run(ask_all())
    assert {answer.http_version for answer in answers} == {"HTTP/2"}
    assert [answer.text.split()[0] for answer in answers] == clients
    assert len(server.seen) == len(clients)


def test_an_https_target_gets_the_header_before_its_tls_handshake(
    start_gateway: GatewayFactory,
) -> None:
    # The server parses the header, then echoes: what came next must be the ClientHello (a TLS
    # handshake record, RFC 8446 §5.1). The echo is no TLS, so the request itself fails.
    with ProxyProtocolServer() as server:
        policy = _http_policy(server.port, "v1").replace(
            "proxy_protocol: v1}", "proxy_protocol: v1, scheme: https}"
        )
        gateway = start_gateway(policy)
        assert gateway.get("app.example", "/").status_code == 502
        (said,) = server.seen
        assert said.split()[0] == "127.0.0.1"
        # The gateway may give up before the server's thread has recorded what it received.
        first = eventually(lambda: server.after.get(said, b""))
        assert first[:1] == b"\x16"  # handshake
