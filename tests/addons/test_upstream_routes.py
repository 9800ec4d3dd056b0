"""Routes through a real gateway (addons.upstream, core.policy.routes): two demo backends record
the path and headers they receive; the rules decide on the client's path, the target gets the
route's rewrite."""

import uuid
from collections.abc import Iterator

import pytest

from tests.addons.test_accesslog import requests
from tests.support.backend import Backend, running_backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def web() -> Iterator[Backend]:
    with running_backend("web") as backend:
        yield backend


@pytest.fixture(scope="module")
def api() -> Iterator[Backend]:
    with running_backend("api") as backend:
        yield backend


def policy(web: int, api: int) -> str:
    return f"""\
version: 1
resources:
  app:
    host: app.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {web}}}]
    rules: [{{action: deny, path: "/admin/*"}}]
    routes:
      - {{path: "/api/*", targets: [{{host: 127.0.0.1, port: {api}}}], rewrite: {{strip_prefix: /api}}}}
      - {{path: "/x/*", targets: [{{host: 127.0.0.1, port: {api}}}],
          rewrite: {{strip_prefix: /x, add_prefix: /admin}}}}
      - {{path: "/api/login", targets: [{{host: 127.0.0.1, port: {web}}}]}}
      - {{path: "/both/*", targets: [{{host: 127.0.0.1, port: {web}}}, {{host: 127.0.0.1, port: {api}}}]}}
  only:
    host: only.test
    auth: public
    routes:
      - {{path: "/api/*", targets: [{{host: 127.0.0.1, port: {api}}}]}}
  closed:
    host: closed.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {web}}}]
    routes:
      - {{path: "/api/*", targets: [{{host: 127.0.0.1, port: 1}}]}}
"""


@pytest.fixture(scope="module")
def gateway(web: Backend, api: Backend, start_module_gateway: GatewayFactory) -> Gateway:
    return start_module_gateway(policy(web.port, api.port))


def marker() -> str:
    return uuid.uuid4().hex[:12]


def test_a_route_sends_its_paths_to_its_targets_rewritten_with_the_query_untouched(
    gateway: Gateway, web: Backend, api: Backend
) -> None:
    mark = marker()
    response = gateway.get("app.test", f"/api/{mark}/items?q=a%20b&next=/api/x&q=2")
    assert response.status_code == 200, response.text
    [seen] = api.received(mark)
    assert seen["target"] == f"/{mark}/items?q=a%20b&next=/api/x&q=2"
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["host"] == "app.test"
    assert headers["x-forwarded-host"] == "app.test"
    assert web.received(mark) == []
    # The access log names the route; `path` stays what the rules decided on.
    (line,) = eventually(lambda: [r for r in requests(gateway.logs()) if mark in r["path"]])
    assert (line["route"], line["path"]) == ("resources.app.routes[0]", f"/api/{mark}/items")


def test_paths_no_route_matches_go_to_the_resource_targets(
    gateway: Gateway, web: Backend, api: Backend
) -> None:
    mark = marker()
    assert gateway.get("app.test", f"/{mark}").status_code == 200
    assert gateway.get("app.test", f"/apix{mark}").status_code == 200  # /api/* is /api and below
    assert [r["target"] for r in web.received(mark)] == [f"/{mark}", f"/apix{mark}"]
    assert api.received(mark) == []


def test_the_exact_route_wins_over_the_subtree_it_lies_in(
    gateway: Gateway, web: Backend, api: Backend
) -> None:
    mark = marker()
    assert gateway.get("app.test", f"/api/login?m={mark}").status_code == 200
    assert [r["target"] for r in web.received(mark)] == [f"/api/login?m={mark}"]
    assert api.received(mark) == []


def test_a_strip_removes_the_segment_with_its_parameters(gateway: Gateway, api: Backend) -> None:
    mark = marker()
    assert gateway.get("app.test", f"/api;v=1/{mark}").status_code == 200
    assert gateway.get("app.test", f"/api?m={mark}").status_code == 200
    assert [r["target"] for r in api.received(mark)] == [f"/{mark}", f"/?m={mark}"]


def test_a_rewrite_onto_a_denied_prefix_reaches_the_target_but_the_prefix_itself_is_denied(
    gateway: Gateway, web: Backend, api: Backend
) -> None:
    """The rules see the client's path and the target the rewritten one: `/x/...` is allowed
    and arrives as `/admin/...`; a client asking for `/admin/...` is denied, and so is one
    trying to climb out of the route (`/x/../admin` is `/admin` before any route is chosen)."""
    mark = marker()
    assert gateway.get("app.test", f"/x/{mark}").status_code == 200
    assert [r["target"] for r in api.received(mark)] == [f"/admin/{mark}"]
    assert gateway.get("app.test", f"/admin/{mark}").status_code == 403
    assert gateway.get("app.test", f"/x/../admin/{mark}").status_code == 403
    assert gateway.get("app.test", f"/x/%2e%2e/admin/{mark}").status_code == 403
    assert len(api.received(mark)) == 1
    assert web.received(mark) == []


def test_a_route_balances_between_its_targets(gateway: Gateway, web: Backend, api: Backend) -> None:
    mark = marker()
    for index in range(4):
        assert gateway.get("app.test", f"/both/{mark}/{index}").status_code == 200
    assert len(web.received(mark)) == len(api.received(mark)) == 2  # round_robin


def test_a_resource_with_routes_only_answers_404_for_other_paths(
    gateway: Gateway, web: Backend, api: Backend
) -> None:
    mark = marker()
    assert gateway.get("only.test", f"/api/{mark}").status_code == 200
    assert [r["target"] for r in api.received(mark)] == [f"/api/{mark}"]
    response = gateway.get("only.test", f"/{mark}")
    assert response.status_code == 404
    assert web.received(mark) == []
    assert len(api.received(mark)) == 1


def test_a_route_whose_target_is_down_answers_502_and_the_resource_targets_still_serve(
    gateway: Gateway, web: Backend
) -> None:
    mark = marker()
    assert gateway.get("closed.test", f"/api/{mark}").status_code == 502
    assert gateway.get("closed.test", f"/{mark}").status_code == 200
    assert [r["target"] for r in web.received(mark)] == [f"/{mark}"]
