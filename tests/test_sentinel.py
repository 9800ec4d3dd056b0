"""Issue 12, test 7: the Redis primary under Sentinel dies; two real nodes keep serving signed-in
requests (session.on_storage_error: last_known) through the failover, then use the promoted
replica without a restart: rate limits count again, a sign-out through one node is refused on
the other, a new sign-in works. All real processes on loopback: redis-server primary and
replica, three redis-sentinel, and per node a gateway and a portal."""

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.authportal.test_portal import sign_in
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.loopback_node import LoopbackNode
from tests.support.sentinel import SentinelCluster, require_redis_sentinel

APP = "app.localhost"
LIMITED = "limited.localhost"


def _limited(backend_port: int) -> str:
    # A limit that closes while storage is down: it proves counting comes back after failover.
    return f"""\
  limited:
    host: {LIMITED}
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend_port}}}]
    rate_limits:
      - {{limit: 10000/minute, per: resource, on_storage_error: closed}}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    require_redis_sentinel()
    cluster = SentinelCluster(tmp_path / "redis").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def nodes(request: pytest.FixtureRequest) -> Iterator[list[LoopbackNode]]:
    started: list[LoopbackNode] = []
    yield started
    report = getattr(request.node, "rep_call", None)
    for node in started:
        node.stop()
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- logs of {node.directory} ---\n{node.logs()[-8000:]}\n")


def _until(seconds: float, check: Callable[[], bool], also: Callable[[], None]) -> float:
    """Poll `check` (running `also` on every round) until true; how long it took."""
    started = time.monotonic()
    while not check():
        also()
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_both_nodes_ride_out_a_sentinel_failover_and_use_the_promoted_replica(
    tmp_path: Path, backend: Backend, cluster: SentinelCluster, nodes: list[LoopbackNode]
) -> None:
    settings = f"storage: {cluster.url}\n"
    a = loopback_node.prepare(
        tmp_path / "a", backend.port, _limited(backend.port), settings + "node: {name: a}\n"
    )
    b = loopback_node.prepare(
        tmp_path / "b",
        backend.port,
        _limited(backend.port),
        settings + "node: {name: b}\n",
        address="127.0.0.2",
        ports=(a.port, a.portal_port),
    )
    for node in (a, b):
        nodes.append(node)
        node.add_user("alice")
        loopback_node.start(node)
        if node is a:  # the same keys on both; published keys (core.cluster.keys) make it moot
            shutil.copytree(a.directory / "state" / "keys", b.directory / "state" / "keys")
    running = [process for node in (a, b) for process in node.processes]
    through_a = a.browser()
    page, at = through_a.go(a.url(APP, "/"))
    assert sign_in(through_a, a, page, at, "alice")[0].status_code == 200
    through_b = Browser(b.port, b.address, jar=through_a.jar)

    def served(browser: Browser, node: LoopbackNode, host: str = APP) -> int:
        return browser.request("GET", node.url(host, "/")).status_code

    assert served(through_b, b) == 200  # a session made on A, used on B
    assert served(through_a, a, LIMITED) == served(through_b, b, LIMITED) == 200

    def still_signed_in() -> None:
        assert served(through_a, a) == 200
        assert served(through_b, b) == 200

    cluster.kill_primary()
    promoted = _until(60, lambda: cluster.master_port() == cluster.replica.port, still_signed_in)
    # Rate limits count in the new primary again (limits' own Sentinel storage).
    _until(
        30,
        lambda: served(through_a, a, LIMITED) == served(through_b, b, LIMITED) == 200,
        still_signed_in,
    )

    # A sign-out through B reaches the new primary; A refuses the cookie within 1 s after it.
    def signs_out() -> bool:
        home, _ = through_b.go(f"{b.portal}/")
        if home.status_code != 200:
            return False  # 503 until B's portal reaches the new primary
        answer = through_b.request(
            "POST",
            f"{b.portal}/sign-out",
            data={"csrf": form_value(home.text, "csrf")},
            origin=b.portal,
        )
        return answer.status_code == 303

    _until(30, signs_out, lambda: None)
    signed_out = time.monotonic()
    cookie = {"warren_session": through_a.cookies(APP)["warren_session"]}
    after = Browser(a.port, a.address, jar={APP: cookie}, accept="*/*")
    while served(after, a) == 200:
        assert time.monotonic() - signed_out < 1.0, "A still serves the signed-out cookie"
        time.sleep(0.01)
    assert served(after, a) == 401
    # And a new sign-in, through B this time, writes to the promoted replica.
    fresh = Browser(b.port, b.address)
    page, at = fresh.go(b.url(APP, "/"))
    assert sign_in(fresh, b, page, at, "alice")[0].status_code == 200
    assert all(process.poll() is None for process in running)  # nothing was restarted
    logs = a.logs() + b.logs()
    assert "Traceback" not in logs
    assert "answers again after" in logs  # the outage's end is logged
    sys.stderr.write(f"replica promoted {promoted:.1f} s after the primary was killed\n")
