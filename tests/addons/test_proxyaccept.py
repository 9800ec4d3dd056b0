"""The PROXY protocol accepted on the gateway's listener (`listen_proxy_protocol: true`) through a
real gateway process: believed from trusted_proxies (rules and the access log see the header's
address), required from them, refused from anyone else, malformed headers refused; on a raw TCP
port, the connection decided on the header's client."""

import socket
import ssl
import struct
from ipaddress import ip_address
from pathlib import Path

import pytest

from core.proxyprotocol import V2_SIGNATURE, Endpoint, Version, encode
from demo import processes
from tests.addons.test_accesslog import requests
from tests.addons.test_raw import first_words, greeting_server, talk
from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory
from tests.support.proxyserver import ProxyProtocolServer
from tests.support.tls import LocalCa
from tests.support.waiting import eventually

SETTINGS = "listen_proxy_protocol: true\n"
GET = b"GET /pp HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"


def _head(trusted: str) -> str:
    return f"""\
version: 1
trusted_proxies: [{trusted}]
rules:
  - {{action: deny, ip: 203.0.113.9}}
resources:
"""


def policy(backend: Backend, trusted: str) -> str:
    return (
        _head(trusted)
        + f"""\
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""
    )


def header(version: Version, client: str) -> bytes:
    return encode(
        version, Endpoint(ip_address(client), 40000), Endpoint(ip_address("10.0.0.1"), 443)
    )


def status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def test_a_trusted_balancers_header_is_the_client(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "127.0.0.1/32"), settings=SETTINGS)
    assert status(talk(gateway.port, header("v1", "203.0.113.9") + GET, half_close=False)) == 403
    assert status(talk(gateway.port, header("v2", "198.51.100.7") + GET, half_close=False)) == 200
    eventually(lambda: any(r["client"] == "198.51.100.7" for r in requests(gateway.logs())))
    assert any(
        r["client"] == "203.0.113.9" and r["status"] == 403 for r in requests(gateway.logs())
    )
    # LOCAL (the balancer's own health check): the connection is the balancer's.
    local = V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    assert status(talk(gateway.port, local + GET, half_close=False)) == 200


def test_a_trusted_peer_must_send_a_valid_header(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "127.0.0.1/32"), settings=SETTINGS)
    assert talk(gateway.port, GET) == b""  # no header at all
    assert talk(gateway.port, b"PROXY TCP4 " + b"1" * 120 + b"\r\n" + GET) == b""  # over 107
    assert talk(gateway.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + GET) == b""  # a field short
    wrong = bytearray(header("v2", "198.51.100.7"))
    wrong[13] = 0x41  # an unknown family
    assert talk(gateway.port, bytes(wrong) + GET) == b""
    assert talk(gateway.port, header("v2", "198.51.100.7")[:20]) == b""  # truncated, then closed
    logs = gateway.logs()
    assert "connection from 127.0.0.1 refused: the connection does not start with a PROXY" in logs
    assert "PROXY v1 header longer than 107 bytes" in logs
    assert "unknown family" in logs
    assert "closed before its PROXY header ended" in logs
    assert not any(r["client"] == "198.51.100.7" for r in requests(logs))


def test_a_header_from_an_untrusted_peer_is_refused(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "127.0.0.2/32"), settings=SETTINGS)
    versions: tuple[Version, ...] = ("v1", "v2")
    for version in versions:
        assert talk(gateway.port, header(version, "198.51.100.7") + GET, half_close=False) == b""
    assert status(talk(gateway.port, GET, half_close=False)) == 200  # without one: as ever
    logs = gateway.logs()
    assert (
        "connection from 127.0.0.1 refused: a PROXY header from a peer not in trusted_proxies"
        in logs
    )
    assert not any(r["client"] == "198.51.100.7" for r in requests(logs))
    assert any(r["client"] == "127.0.0.1" for r in requests(logs))


@pytest.mark.parametrize("kind", ["warren", "mitmdump"])
def test_the_header_comes_before_tls_on_the_https_listener(
    kind: str, backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    ca = LocalCa.fresh()
    ca.issue(["app.example"], tmp_path / "app.pem")
    settings = f"{SETTINGS}certs: [{tmp_path / 'app.pem'}]\n"
    gateway = start_gateway(policy(backend, "127.0.0.1/32"), kind=kind, settings=settings)
    context = ssl.create_default_context(cafile=ca.write(tmp_path / "ca.pem"))

    def over_tls(client: str) -> int | None:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
            raw.sendall(header("v2", client))
            with context.wrap_socket(raw, server_hostname="app.example") as tls:
                tls.sendall(GET)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
        return status(answer)

    assert over_tls("203.0.113.9") == 403
    assert over_tls("198.51.100.7") == 200
    eventually(lambda: any(r["client"] == "198.51.100.7" for r in requests(gateway.logs())))


def raw_policy(port: int, target: int, trusted: str, proxy_protocol: str = "") -> str:
    sent = f", proxy_protocol: {proxy_protocol}" if proxy_protocol else ""
    return (
        _head(trusted)
        + f"""\
  mail:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{host: 127.0.0.1, port: {target}{sent}}}]
"""
    )


def test_a_raw_tcp_port_decides_on_the_balancers_client_and_passes_it_on(
    start_gateway: GatewayFactory,
) -> None:
    # balancer -> Warren (accepts v2) -> a target that parses v1: it sees the balancer's client.
    with ProxyProtocolServer() as server:
        port = processes.free_port()
        policy = raw_policy(port, server.port, "127.0.0.1/32", proxy_protocol="v1")
        gateway = start_gateway(policy, settings=SETTINGS)
        processes.wait_for_port(port, gateway.process)
        answer = talk(port, header("v2", "198.51.100.7") + b"EHLO client\r\n")
        said, _, rest = answer.partition(b"|")
        assert said.decode().split()[:2] == ["198.51.100.7", "40000"]
        assert rest == b"EHLO client\r\n"  # the balancer's header is not passed on
        assert talk(port, header("v1", "203.0.113.9") + b"EHLO client\r\n") == b""  # denied
        assert talk(port, b"EHLO client\r\n") == b""  # a trusted peer without a header
        logs = gateway.logs()
        assert "tcp mail from 203.0.113.9 refused" in logs
        assert (
            "connection from 127.0.0.1 refused: the connection does not start with a PROXY" in logs
        )


def test_a_server_that_speaks_first_greets_once_the_header_is_read(
    start_gateway: GatewayFactory,
) -> None:
    with greeting_server() as greeter:
        port = processes.free_port()
        settings = f"{SETTINGS}http: {{head_timeout: 2s}}\n"
        gateway = start_gateway(raw_policy(port, greeter, "127.0.0.1/32"), settings=settings)
        processes.wait_for_port(port, gateway.process)
        assert first_words(port, header("v2", "198.51.100.7")) == b"hello\n"
        # A trusted balancer that never finishes its header is closed at http.head_timeout.
        assert first_words(port, header("v2", "198.51.100.7")[:10]) == b""
        assert "connection from 127.0.0.1 refused: no whole PROXY header in time" in gateway.logs()
