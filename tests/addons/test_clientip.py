"""Who is asking (addons.clientip): the socket peer, or the address a trusted proxy forwarded; in
the in-process pack (tests.support.inprocess: 10.9.0.0/16 is trusted, 203.0.113.128/25 denied),
and in a real gateway whose client binds a second loopback address."""

import ipaddress
from pathlib import Path

import httpx
from mitmproxy import http

from addons.exchange import exchange_of
from core.clientip import ClientAddress
from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory
from tests.support.inprocess import flow, pack, run


def status(made: object) -> int | None:
    response = getattr(made, "response", None)
    return response.status_code if response is not None else None


def client_of(made: http.HTTPFlow) -> ClientAddress:
    exchange = exchange_of(made)
    assert exchange is not None
    return exchange.client


def test_without_trusted_proxies_the_peer_is_the_client(tmp_path: Path) -> None:
    policy = """\
version: 1
resources:
  app: {host: app.example, auth: public, targets: [{host: 192.0.2.10, port: 8080}]}
"""
    with pack(tmp_path, policy) as (context, _):
        made = run(
            context, flow("app.example", peer="10.9.0.1", headers=[("X-Forwarded-For", "x")])
        )
        assert status(made) is None  # not even read: nobody is trusted to send it
        peer = ipaddress.ip_address("10.9.0.1")
        assert client_of(made) == ClientAddress(peer, peer, "peer")


def test_a_trusted_proxy_names_the_client_across_all_its_header_fields(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        # Two fields are one list (RFC 9110 §5.3); the rightmost address no trusted proxy vouches
        # for is the client, whatever the hops left of it claim.
        hops = [("X-Forwarded-For", "6.6.6.6, 198.51.100.1"), ("X-Forwarded-For", "10.9.0.7")]
        made = run(context, flow("app.example", peer="10.9.0.1", headers=hops))
        assert status(made) is None
        assert client_of(made) == ClientAddress(
            ipaddress.ip_address("198.51.100.1"),
            ipaddress.ip_address("10.9.0.1"),
            "x-forwarded-for",
        )
        from_anyone = run(context, flow("app.example", peer="198.51.100.9", headers=hops))
        assert client_of(from_anyone).via == "peer"
        assert str(client_of(from_anyone).ip) == "198.51.100.9"


def test_forwarded_for_counts_only_from_trusted_proxies(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        via_proxy = [("X-Forwarded-For", "203.0.113.200")]  # inside the globally denied /25
        assert status(run(context, flow("app.example", peer="10.9.0.1", headers=via_proxy))) == 403
        assert (
            status(run(context, flow("app.example", peer="198.51.100.1", headers=via_proxy)))
            is None
        )
        garbage = [("X-Forwarded-For", "not an address")]
        assert status(run(context, flow("app.example", peer="10.9.0.1", headers=garbage))) == 400


def test_an_unreadable_forwarded_address_is_400_and_decides_nothing(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        garbage = [("X-Forwarded-For", "198.51.100.1, not an address")]
        made = run(context, flow("app.example", peer="10.9.0.1", headers=garbage))
        assert made.response is not None
        assert made.response.status_code == 400
        assert b"unreadable client address" in (made.response.content or b"")
        assert made.request.host == "127.0.0.1"  # never pointed at a target
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.target is None


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    import uuid

    gateway = start_gateway(
        f"""\
version: 1
trusted_proxies: [127.0.0.2/32]
rules:
  - {{action: deny, cidr: 203.0.113.0/24}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""
    )
    tag = uuid.uuid4().hex[:12]
    # From 127.0.0.1 (not trusted) the header is ignored and replaced.
    assert (
        gateway.get(
            "app.example", f"/{tag}", headers={"X-Forwarded-For": "203.0.113.9"}
        ).status_code
        == 200
    )
    # From 127.0.0.2 (trusted) the client is 203.0.113.9, which a global rule denies.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with gateway.client(transport=transport) as client:
        denied = client.get(
            f"/{tag}-2", headers={"host": "app.example", "X-Forwarded-For": "203.0.113.9"}
        )
        assert denied.status_code == 403
        allowed = client.get(
            f"/{tag}-3", headers={"host": "app.example", "X-Forwarded-For": "198.51.100.4"}
        )
        assert allowed.status_code == 200
    (seen,) = backend.received(f"{tag}-3")
    assert {k.lower(): v for k, v in seen["headers"]}["x-forwarded-for"] == "198.51.100.4"
