"""Which resource (addons.routing): by Host, exact then wildcard, on the one canonical path the
rules and the backend both see; in the in-process pack (tests.support.inprocess). The sites' API,
chosen by path on any host: tests/addons/test_siteapi.py."""

from pathlib import Path

import pytest

from tests.support.inprocess import flow, pack, run


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


def test_the_exchange_carries_the_canonical_path_and_the_one_rules_match(
    tmp_path: Path,
) -> None:
    from addons.exchange import exchange_of

    with pack(tmp_path) as (context, _):
        made = run(context, flow("app.example", "/%61pi;v=1//items/../list?q=%2F"))
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.resource.name == "app"
        assert (exchange.path, exchange.match_path) == ("/api;v=1/list", "/api/list")
        assert made.request.path == "/api;v=1/list?q=%2F"  # the query goes on byte for byte
        assert status(run(context, flow("app.example", "/admin;x/panel"))) == 403


def test_an_unknown_host_or_an_ambiguous_path_is_refused_before_any_resource(
    tmp_path: Path,
) -> None:
    from addons.exchange import NotYetDecided, exchange_of

    with pack(tmp_path) as (context, _):
        for host, path, expected in [
            ("nowhere.example", "/", 404),
            ("", "/", 404),
            ("app.example", "/a%2fb", 400),
            ("app.example", "/a%00b", 400),
        ]:
            made = run(context, flow(host, path))
            assert status(made) == expected, (host, path)
            exchange = exchange_of(made)
            assert exchange is not None
            with pytest.raises(NotYetDecided):
                exchange.resource  # noqa: B018
