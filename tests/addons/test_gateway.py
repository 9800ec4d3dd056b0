"""A real gateway process (both `warren gateway` and `mitmdump -s addons/warren.py`) in front of a
real backend, driven by a real client."""

import uuid

import pytest

from tests.conftest import Backend, GatewayFactory

KINDS = ["warren", "mitmdump"]


def policy(backend: Backend, extra: str = "") -> str:
    return f"""\
version: 1
trusted_proxies: [127.0.0.2/32]
rules:
  - {{action: deny, cidr: 203.0.113.0/24}}
resources:
  app:
    host: [app.example, "*.apps.example"]
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, path: "/admin/*"}}
  private:
    host: private.example
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
{extra}"""


def marker() -> str:
    return uuid.uuid4().hex[:12]


@pytest.mark.parametrize("kind", KINDS)
def test_routes_by_host_with_the_clients_host_and_gateway_set_forwarding(
    kind: str, backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend), kind=kind)
    tag = marker()
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "gopher",
        "Remote-User": "admin",
        "Remote-Groups": "admins",
        "X-Forwarded-Uri": "/public",
    }
    response = gateway.get("App.Example.", f"/{tag}/a/../b//c?x=1", headers=forged)
    assert response.status_code == 200, response.text
    (seen,) = backend.received(tag)
    assert seen["target"] == f"/{tag}/b/c?x=1"
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["host"] == "App.Example."
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == "App.Example."
    assert headers["x-forwarded-proto"] == "http"
    for name in ("remote-user", "remote-groups", "x-forwarded-uri"):
        assert name not in headers
    assert [name.lower() for name, _ in seen["headers"]].count("x-forwarded-for") == 1
    assert gateway.get("x.apps.example", f"/{tag}-wild").status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_refusals_are_answered_by_the_gateway_and_nothing_is_forwarded(
    kind: str, backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend), kind=kind)
    tag = marker()
    cases = [
        ("nowhere.example", f"/{tag}/1", 404),
        ("app.example", f"/admin/{tag}", 403),
        ("app.example", f"/admin;x/{tag}", 403),
        ("app.example", f"/%61dmin/{tag}", 403),
        ("app.example", f"/{tag}/%2e%2e/%2e%2e/etc", 400),
        ("app.example", f"/{tag}%2f..", 400),
        ("app.example", f"/{tag}/..;/admin", 400),
        ("private.example", f"/{tag}/2", 401),
    ]
    for host, path, expected in cases:
        response = gateway.get(host, path, headers={"accept": "text/html"})
        assert response.status_code == expected, (host, path, response.text)
        assert "Protected by Warren" in response.text
    assert backend.received(tag) == []


def test_upstream_failure_is_a_warren_502_page_that_names_no_address(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    from demo.processes import free_port

    closed = free_port()
    extra = f"""\
  down:
    host: down.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {closed}}}]
"""
    gateway = start_gateway(policy(backend, extra))
    response = gateway.get("down.example", "/", headers={"accept": "text/html"})
    assert response.status_code == 502
    assert "The application is not answering" in response.text
    assert str(closed) not in response.text
    assert "127.0.0.1" not in response.text
    assert f"127.0.0.1:{closed} failed" in gateway.logs()


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend))
    tag = marker()
    # From 127.0.0.1 (not trusted) the header is ignored and replaced.
    assert (
        gateway.get(
            "app.example", f"/{tag}", headers={"X-Forwarded-For": "203.0.113.9"}
        ).status_code
        == 200
    )
    # From 127.0.0.2 (trusted) the client is 203.0.113.9, which a global rule denies.
    import httpx

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


def test_health_checks_take_a_dead_target_out_of_routing(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    from demo.processes import free_port
    from tests.conftest import eventually

    closed = free_port()
    extra = f"""\
  pair:
    host: pair.example
    auth: public
    health: {{path: /.health, interval: 0.2s, timeout: 0.5s}}
    targets: [{{host: 127.0.0.1, port: {backend.port}}}, {{host: 127.0.0.1, port: {closed}}}]
  dead:
    host: dead.example
    auth: public
    health: {{path: /.health, interval: 0.2s}}
    targets: [{{host: 127.0.0.1, port: {closed}}}]
"""
    gateway = start_gateway(policy(backend, extra))
    eventually(lambda: gateway.get("dead.example", "/").status_code == 503)
    assert all(gateway.get("pair.example", f"/{i}").status_code == 200 for i in range(6))


def test_websockets_pass_through(backend: Backend, start_gateway: GatewayFactory) -> None:
    import asyncio

    import aiohttp

    gateway = start_gateway(policy(backend))

    async def talk() -> list[str]:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{gateway.port}/.ws"
            async with session.ws_connect(url, headers={"Host": "app.example"}) as socket:
                replies = []
                for text in ("one", "two"):
                    await socket.send_str(text)
                    replies.append((await socket.receive(timeout=5)).data)
                return replies

    assert asyncio.run(talk()) == ["echo: one", "echo: two"]


def test_http2_passes_through_over_tls(backend: Backend, start_gateway: GatewayFactory) -> None:
    from tests.support import h2client
    from tests.support.tls import self_signed

    cert = self_signed(["app.example"])
    gateway = start_gateway(policy(backend), settings=f"certs: [{cert}]\n")
    tag = marker()
    response = h2client.get(gateway.port, "app.example", f"/{tag}", cert)
    assert response.alpn == "h2"
    assert response.status == 200, response.body
    denied = h2client.get(gateway.port, "app.example", f"/admin/{tag}", cert)
    assert denied.status == 403
    (seen,) = backend.received(tag)
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["host"] == "app.example"
    assert headers["x-forwarded-proto"] == "https"


def test_a_gateway_that_cannot_listen_exits_with_the_reason(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    import subprocess

    from demo import processes

    first = start_gateway(policy(backend))
    second = subprocess.run(
        processes.warren("gateway", "--config", str(first.config)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "address already in use" in second.stderr
    assert first.get("app.example", "/still-serving").status_code == 200
