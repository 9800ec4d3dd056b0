"""The PROXY protocol sent to raw TCP and HTTP targets that ask for it, through a real gateway process to
a real server that parses the header (tests/support/proxyserver.py, its own parser)."""

from collections.abc import Iterator

import httpx
import pytest

from addons.pack import warren_addons
from demo import processes
from tests.addons.test_raw import talk
from tests.support.gateway import GatewayFactory
from tests.support.proxyserver import ProxyProtocolServer

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
