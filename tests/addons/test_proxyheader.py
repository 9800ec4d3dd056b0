"""The PROXY protocol sent to raw TCP targets that ask for it, through a real gateway process to
a real server that parses the header (tests/support/proxyserver.py, its own parser)."""

from collections.abc import Iterator

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
