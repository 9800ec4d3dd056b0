"""`warren gateway` (addons.gateway): the Warren pack in the lean master, a real process in front
of a real backend, driven by a real client; and what the master is made of, in-process.

One gateway process serves the module; it speaks TLS (with h2) as well as plain HTTP on its port.
The same routing and refusals under `mitmdump -s addons/warren.py`: tests/addons/test_warren.py.
"""

import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path

import pytest

from addons import gateway as lean
from addons.failclosed import TRAFFIC
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory


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


@pytest.fixture(scope="module")
def cert() -> Path:
    from tests.support.tls import self_signed

    return self_signed(["app.example"])


@pytest.fixture(scope="module")
def gateway(backend: Backend, cert: Path, start_module_gateway: GatewayFactory) -> Gateway:
    return start_module_gateway(policy(backend), settings=f"certs: [{cert}]\n")


def routes_by_host(gateway: Gateway, backend: Backend) -> None:
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


def refusals_are_answered(gateway: Gateway, backend: Backend) -> None:
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


def test_routes_by_host_with_the_clients_host_and_gateway_set_forwarding(
    gateway: Gateway, backend: Backend
) -> None:
    routes_by_host(gateway, backend)


def test_refusals_are_answered_by_the_gateway_and_nothing_is_forwarded(
    gateway: Gateway, backend: Backend
) -> None:
    refusals_are_answered(gateway, backend)


def test_http2_passes_through_over_tls(gateway: Gateway, cert: Path, backend: Backend) -> None:
    from tests.support import h2client

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


def test_a_gateway_that_cannot_listen_exits_with_the_reason(gateway: Gateway) -> None:
    import subprocess

    from demo import processes

    second = subprocess.run(
        processes.warren("gateway", "--config", str(gateway.config)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "address already in use" in second.stderr
    assert gateway.get("app.example", "/still-serving").status_code == 200


def test_the_master_holds_only_what_a_reverse_proxy_needs() -> None:
    from mitmproxy import options

    from addons.pack import Warren

    async def chain() -> list[object]:
        return list(lean.GatewayMaster(options.Options()).addons.chain)

    addons = asyncio.run(chain())
    assert [type(addon).__name__ for addon in addons] == [
        "Proxyserver",
        "NextLayer",
        "TlsConfig",
        "DisableH2C",
        "_StartupErrorCheck",
        "Warren",
    ]
    assert isinstance(addons[-1], Warren)


def test_the_command_reruns_itself_optimised_once(monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.flags.optimize:
        pytest.skip("already under python -O: nothing to re-run")
    ran: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, args: ran.append([path, *args]))
    monkeypatch.delenv("WARREN_NO_OPTIMIZE", raising=False)
    lean.optimised(["gateway", "--config", "warren.yaml"])
    assert ran == [
        [sys.executable, sys.executable, "-O", "-m", "core", "gateway", "--config", "warren.yaml"]
    ]
    monkeypatch.setenv("WARREN_NO_OPTIMIZE", "1")
    lean.optimised(["gateway"])
    assert len(ran) == 1


def test_the_gateway_says_ready_once_it_listens_and_never_when_it_cannot(
    gateway: Gateway, backend: Backend, tmp_path: Path
) -> None:
    import subprocess

    from demo import processes
    from tests.support import gateway as gateways
    from tests.support.notify import NotifySocket

    with NotifySocket() as systemd:
        started = gateways.launch(tmp_path / "gw", policy(backend), env=systemd.env)
        try:
            message = systemd.receive()
            assert message == f"READY=1\nSTATUS=listening on 127.0.0.1:{started.port}"
            assert started.get("app.example", "/ready").status_code == 200  # no wait needed
        finally:
            gateways.stop(started)
        taken = subprocess.run(  # the module's gateway holds its port
            processes.warren("gateway", "--config", str(gateway.config)),
            env={**os.environ, **systemd.env},
            capture_output=True,
            timeout=60,
        )
        assert taken.returncode == 1
        assert systemd.pending() is None  # it has exited: anything it sent would be here


def test_a_request_that_fails_while_the_gateway_starts_is_not_a_failed_start() -> None:
    # A client may connect before start-up ends; its failing hook answers or closes it
    # (failclosed), and must not make the start-up check end the gateway.
    check = lean._StartupErrorCheck()
    logger = logging.getLogger("warren.gateway")
    try:
        logger.error("raw.client_connected failed; closing the connection", extra=TRAFFIC)
        assert check.logger.has_errored == []
        logger.error("the policy file does not load")
        assert [r.getMessage() for r in check.logger.has_errored] == [
            "the policy file does not load"
        ]
    finally:
        check.logger.uninstall()
