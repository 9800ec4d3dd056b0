"""Redis down, with real gateways and portals: signed-in applications keep working (or answer
503 under `deny`), what must be written answers Warren's 503 page and never a traceback; and a
sign-out through one node is refused on another from the next request (issue 12, test 4)."""

import html
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from authportal.commands import register
from demo import processes
from tests.authportal.test_portal import sign_in, until
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.loopback_node import LoopbackNode
from tests.support.redis import RedisServer, require_redis_server

APP = "app.localhost"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    yield server
    server.stop()


@pytest.fixture
def nodes(request: pytest.FixtureRequest) -> Iterator[list[LoopbackNode]]:
    started: list[LoopbackNode] = []
    yield started
    report = getattr(request.node, "rep_call", None)
    for node in started:
        node.stop()
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- logs of {node.directory} ---\n{node.logs()[-6000:]}\n")


def _start(nodes: list[LoopbackNode], node: LoopbackNode) -> LoopbackNode:
    nodes.append(node)
    try:
        loopback_node.start(node)
    except RuntimeError as error:
        pytest.fail(f"{error}:\n{node.logs()}")
    return node


def _signed_in(node: LoopbackNode) -> Browser:
    browser = node.browser()
    page, at = browser.go(node.url(APP, "/"))
    landed, _at = sign_in(browser, node, page, at, "alice")
    assert landed.status_code == 200, browser.visited
    return browser


def _storage_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert response.headers["retry-after"] == "5"
    assert "cannot reach the storage it keeps sign-ins in" in response.text
    assert "Protected by Warren" in response.text  # Warren's page, not aiohttp's


def test_signed_in_applications_keep_working_while_redis_is_down(
    tmp_path: Path, backend: Backend, redis: RedisServer, nodes: list[LoopbackNode]
) -> None:
    node = loopback_node.prepare(
        tmp_path / "node", backend.port, settings=f"storage: {redis.url}\n"
    )
    _start(nodes, node)
    node.add_user("alice")
    browser = _signed_in(node)
    redis.stop()
    for _ in range(15):  # across the moment the gateway notices: never a refusal, never a 500
        assert browser.request("GET", node.url(APP, "/")).status_code == 200
        time.sleep(0.1)
    # A new sign-in must count failures and record itself: it cannot, so Warren's 503 page.
    stranger = node.browser()
    page, _at = stranger.go(node.url(APP, "/"))
    form = {
        "csrf": form_value(page.text, "csrf"),
        "rd": form_value(page.text, "rd"),
        "username": "alice",
        "password": loopback_node.PASSWORD,
    }
    _storage_page(stranger.request("POST", f"{node.portal}/sign-in", data=form, origin=node.portal))
    answer = stranger.request(
        "POST", f"{node.portal}/sign-in", data=form, origin=node.portal, accept="application/json"
    )
    assert answer.status_code == 503
    assert answer.json()["status"] == 503
    # The signed-in browser reaching a resource it has no cookie for needs a one-time code.
    _storage_page(browser.go(node.url("wiki.localhost", "/"))[0])
    # A sign-out cannot be recorded: said so, and the cookie is kept for another try.
    ask, _ = browser.go(node.url(APP, "/.warren/logout"))
    action = re.search(r'<form method="post" action="([^"]+)"', ask.text)
    assert action is not None
    refused = browser.request(
        "POST", node.url(APP, html.unescape(action.group(1))), origin=f"http://{APP}:{node.port}"
    )
    _storage_page(refused)
    assert "warren_session" in browser.cookies(APP)
    logs = node.logs()
    assert "Traceback" not in logs
    assert "internal error" not in logs
    assert "is unreachable" in logs  # the outage is logged, once per process
    # Back (empty: this Redis keeps nothing, see docs/nodes.md): signing in works again.
    redis.start()
    assert until(30, lambda: _signs_in(node))
    assert browser.request("GET", node.url(APP, "/")).status_code == 200


def _signs_in(node: LoopbackNode) -> bool:
    browser = node.browser()
    page, at = browser.go(node.url(APP, "/"))
    if "csrf" not in page.text:
        return False
    landed, _at = sign_in(browser, node, page, at, "alice")
    return landed.status_code == 200


def test_deny_answers_503_to_signed_in_requests_while_redis_is_down(
    tmp_path: Path, backend: Backend, redis: RedisServer, nodes: list[LoopbackNode]
) -> None:
    settings = f"storage: {redis.url}\nsession: {{on_storage_error: deny}}\n"
    node = _start(nodes, loopback_node.prepare(tmp_path / "node", backend.port, settings=settings))
    node.add_user("alice")
    browser = _signed_in(node)
    redis.stop()
    assert until(30, lambda: browser.request("GET", node.url(APP, "/")).status_code == 503)
    _storage_page(browser.request("GET", node.url(APP, "/")))
    assert "Traceback" not in node.logs()
    redis.start()
    assert until(30, lambda: browser.request("GET", node.url(APP, "/")).status_code == 200)


ROUNDS = 20


def test_a_sign_out_through_one_node_is_refused_on_the_other_from_the_next_request(
    tmp_path: Path, backend: Backend, redis: RedisServer, nodes: list[LoopbackNode]
) -> None:
    """Issue 12, test 4: sign out through B, and A refuses the old cookie within 1 s. Measured
    on a connection to A opened before the sign-out, many times over; what holds is stronger
    (docs/nodes.md): refused on the very next request."""
    a = loopback_node.prepare(
        tmp_path / "a", backend.port, settings=f"storage: {redis.url}\nnode: {{name: a}}\n"
    )
    b = loopback_node.prepare(
        tmp_path / "b",
        backend.port,
        settings=f"storage: {redis.url}\nnode: {{name: b}}\n",
        address="127.0.0.2",
        ports=(a.port, a.portal_port),
    )
    _start(nodes, a)
    # The same keys on both, as the README's manual setup has them; with every node's public
    # keys published in storage (core.cluster.keys) this copy is no longer needed.
    shutil.copytree(a.directory / "state" / "keys", b.directory / "state" / "keys")
    _start(nodes, b)
    for node in (a, b):
        node.add_user("alice")
    late: list[float] = []
    for round_ in range(ROUNDS):
        browser = _signed_in(a)
        through_b = Browser(b.port, b.address, jar=browser.jar)
        cookie = f"warren_session={browser.cookies(APP)['warren_session']}"
        with httpx.Client(timeout=10) as to_a:

            def ask_a(cookie: str = cookie) -> httpx.Response:
                return to_a.get(
                    f"http://{a.address}:{a.port}/",
                    headers={"host": f"{APP}:{a.port}", "cookie": cookie, "accept": "*/*"},
                )

            before = ask_a()
            assert before.status_code == 200
            if round_ % 2 == 0:  # at B's portal
                home, _ = through_b.go(f"{b.portal}/")
                answer = through_b.request(
                    "POST",
                    f"{b.portal}/sign-out",
                    data={"csrf": form_value(home.text, "csrf")},
                    origin=b.portal,
                )
            else:  # on the application's host, through B's gateway
                ask, _ = through_b.go(b.url(APP, "/.warren/logout"))
                action = re.search(r'<form method="post" action="([^"]+)"', ask.text)
                assert action is not None
                answer = through_b.request(
                    "POST",
                    b.url(APP, html.unescape(action.group(1))),
                    origin=f"http://{APP}:{b.port}",
                )
            signed_out = time.monotonic()
            assert answer.status_code in (302, 303), answer.text[:300]
            after = ask_a()
            assert _same_connection(before, after)
            if after.status_code != 401:  # served: when is it refused (the bound)?
                while after.status_code == 200 and time.monotonic() - signed_out < 5:
                    after = ask_a()
                late.append(time.monotonic() - signed_out)
            assert after.status_code == 401, after.text[:300]
    # The bound (within 1 s) and the stronger guarantee (the next request).
    assert all(seconds < 1.0 for seconds in late), late
    assert late == [], f"{len(late)} of {ROUNDS} first requests after the sign-out served: {late}"


def _same_connection(before: httpx.Response, after: httpx.Response) -> bool:
    def local(response: httpx.Response) -> object:
        return response.extensions["network_stream"].get_extra_info("client_addr")

    return bool(local(before) == local(after))


def test_commands_that_end_sessions_say_so_when_storage_is_down(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    (tmp_path / "policy.yaml").write_text("version: 1\nresources: {}\n")
    config = tmp_path / "warren.yaml"
    config.write_text(
        "public_url: https://auth.example.com\npolicy_file: policy.yaml\nstate_dir: state\n"
        f"users_file: users.yaml\nstorage: redis://127.0.0.1:{processes.free_port()}/0\n"
    )
    runner = CliRunner()

    def run(*args: str, stdin: str = "") -> str:
        result = runner.invoke(app, [*args, "-c", str(config)], input=stdin)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result.output

    revoked = run("sessions", "revoke", "--user", "alice")
    assert "the sign-in state was not changed; when storage answers, run this again" in revoked
