import json
from pathlib import Path

import pytest

from addons.exchange import exchange_of
from tests.addons.support import flow, pack, respond, run


def status(made: object) -> int | None:
    response = getattr(made, "response", None)
    return response.status_code if response is not None else None


def test_routes_by_host_keeping_the_clients_host_header(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        made = run(context, flow("App.Example:443", "/x/../y//z?q=1"))
        assert made.response is None
        assert (made.request.scheme, made.request.host, made.request.port) == (
            "http",
            "192.0.2.10",
            8080,
        )
        assert made.request.host_header == "App.Example:443"
        assert made.request.path == "/y/z?q=1"
        https = run(context, flow("private.example", "/status"))
        assert (https.request.scheme, https.request.port) == ("https", 9090)


def test_wildcard_hosts(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        assert run(context, flow("wiki.apps.example")).request.host == "192.0.2.10"
        assert status(run(context, flow("apps.example"))) == 404


def test_refusals_never_reach_a_backend(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        for host, path, expected in [
            ("nowhere.example", "/", 404),
            ("app.example", "/admin/panel", 403),
            ("app.example", "/a/%2e%2e/%2e%2e/x", 400),
            ("app.example", "/a%2fb", 400),
            ("private.example", "/", 401),
        ]:
            made = run(context, flow(host, path))
            assert status(made) == expected, (host, path)
            assert made.request.host == "127.0.0.1"  # never pointed at a target
            exchange = exchange_of(made)
            assert exchange is None or exchange.target is None


def test_api_clients_get_json_and_browsers_get_a_page(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        api = run(context, flow("app.example", "/admin/"))
        assert api.response is not None
        assert json.loads(api.response.content or b"")["status"] == 403
        browser = run(context, flow("app.example", "/admin/", headers=[("Accept", "text/html")]))
        assert browser.response is not None
        assert browser.response.headers["content-type"].startswith("text/html")
        assert b"Access denied" in (browser.response.content or b"")


def test_identity_and_forwarding_headers_from_clients_are_replaced(tmp_path: Path) -> None:
    forged = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "gopher"),
        ("Remote-User", "admin"),
        ("Remote-Groups", "admins"),
        ("remote-email", "a@b"),
        ("X-Warren-Assertion", "x"),
        ("X-Forwarded-Uri", "/public"),
        ("X-Real-IP", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6"),
    ]
    with pack(tmp_path) as (context, _):
        made = run(context, flow("app.example", "/", headers=forged))
        headers = made.request.headers
        assert headers.get_all("x-forwarded-for") == ["198.51.100.7"]
        assert headers.get_all("x-real-ip") == ["198.51.100.7"]
        for name in (
            "remote-user",
            "remote-groups",
            "remote-email",
            "x-warren-assertion",
            "x-forwarded-uri",
            "forwarded",
        ):
            assert name not in headers


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


def test_least_conn_counts_requests_out(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, runtime):
        made = run(context, flow("app.example"))
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.target is not None
        from core.balance import target_key

        assert runtime.upstreams.active(target_key(exchange.target)) == 1
        respond(context, made)
        assert runtime.upstreams.active(target_key(exchange.target)) == 0


def test_an_unconfigured_pack_answers_503(tmp_path: Path) -> None:
    from mitmproxy.test import taddons

    from addons.pack import warren_addons
    from tests.addons.support import trigger

    with taddons.context(*warren_addons()) as context:
        made = flow("app.example")
        from mitmproxy.proxy.layers.http._hooks import HttpRequestHeadersHook

        trigger(context, made, HttpRequestHeadersHook)
        assert status(made) == 503


def test_a_broken_config_stops_startup_with_the_reason(tmp_path: Path) -> None:
    from mitmproxy import exceptions

    expected = pytest.raises(
        exceptions.OptionsError, match=r"policy.yaml:1: version: Input should be 1"
    )
    with expected, pack(tmp_path, policy="version: 2\n"):
        pass
