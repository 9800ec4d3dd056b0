"""Rate limits (addons.ratelimit): in-process with mitmproxy's test helpers, a stand-in for
sign-in naming the user; and in real gateway processes in front of a real backend, counters in
memory and in a real redis-server shared by two gateways and stopped mid-test."""

import asyncio
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import taddons, tutils

from addons.deadlines import Deadlines
from addons.exchange import Exchange
from addons.pack import Warren, parts, request_steps
from addons.ratelimit import RateLimits
from addons.runtime import RuntimeSlot
from tests.support import inprocess
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.inprocess import flow
from tests.support.redis import RedisServer, require_redis_server
from tests.support.waiting import eventually

POLICY = """\
version: 1
rate_limits:
  - {limit: 100/minute}
resources:
  app:
    host: app.example
    auth: public
    targets: [{host: 192.0.2.10, port: 8080}]
    rate_limits:
      - {limit: 2/minute, path: "/limited/*", headers: true}
      - {limit: 2/minute, per: user, path: "/mine/*"}
      - {limit: 1/minute, per: resource, path: "/closed/*", on_storage_error: closed}
      - {limit: 1/minute, per: resource, path: "/open/*", on_storage_error: open}
"""


class SignedIn:
    """Stands in for sign-in: it sets Exchange.user before RateLimits runs, as sign-in does."""

    def requestheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        if "x-test-user" in made.request.headers:
            exchange.user = made.request.headers["x-test-user"]


def steps_with_sign_in_stand_in(deadlines: Deadlines) -> list[object]:
    steps = request_steps(deadlines)
    at = next(i for i, step in enumerate(steps) if isinstance(step, RateLimits))
    return [*steps[:at], SignedIn(), *steps[at:]]


@contextmanager
def pack(tmp_path: Path, storage: str = "memory://") -> Iterator[taddons.context]:
    def with_stand_in(slot: RuntimeSlot) -> Warren:
        return Warren(*parts(slot, steps_with_sign_in_stand_in))

    settings = f"storage: {storage}\n"
    with inprocess.pack(tmp_path, POLICY, settings, addon=with_stand_in) as (context, _):
        yield context


def exchange(context: taddons.context, *made: http.HTTPFlow) -> list[http.HTTPFlow]:
    """Each flow through the request hooks and, when forwarded, a 200 from the backend; all in
    one event loop, as in a gateway."""

    async def go() -> None:
        for one in made:
            for hook in (HttpRequestHeadersHook, HttpRequestHook):
                await context.master.addons.handle_lifecycle(hook(one))
            if one.response is None:
                one.response = tutils.tresp()
                await context.master.addons.handle_lifecycle(HttpResponseHeadersHook(one))
                await context.master.addons.handle_lifecycle(HttpResponseHook(one))

    asyncio.run(go())
    return list(made)


def statuses(made: list[http.HTTPFlow]) -> list[int]:
    return [one.response.status_code if one.response else 0 for one in made]


def test_the_third_request_gets_429_with_headers_and_is_not_forwarded(tmp_path: Path) -> None:
    with pack(tmp_path) as context:
        made = exchange(context, *(flow("app.example", f"/limited/{i}") for i in range(3)))
    assert statuses(made) == [200, 200, 429]
    first, second, refused = (one.response or http.Response.make(0) for one in made)
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert second.headers["ratelimit-remaining"] == "0"
    assert 0 <= int(first.headers["ratelimit-reset"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (refused.headers["ratelimit-limit"], refused.headers["ratelimit-remaining"]) == (
        "2",
        "0",
    )
    body = json.loads(refused.content or b"")
    assert body["status"] == 429
    assert "Try again in" in body["detail"]
    assert made[2].request.host == "127.0.0.1"  # never pointed at a target


def test_browsers_get_a_page_and_limits_without_headers_add_none(tmp_path: Path) -> None:
    with pack(tmp_path) as context:
        html = [("Accept", "text/html")]
        made = exchange(
            context,
            *(flow("app.example", "/limited/x", headers=html) for _ in range(3)),
            flow("app.example", "/elsewhere"),
        )
    refused = made[2].response
    assert refused is not None
    assert refused.headers["content-type"].startswith("text/html")
    assert b"Too many requests" in (refused.content or b"")
    other = made[3].response
    assert other is not None
    assert other.status_code == 200
    assert "ratelimit-limit" not in other.headers  # the global limit has headers: false


def test_per_user_counts_the_signed_in_identity_and_otherwise_the_address(tmp_path: Path) -> None:
    def mine(user: str | None, peer: str = "198.51.100.7") -> http.HTTPFlow:
        headers = [("x-test-user", user)] if user else []
        return flow("app.example", "/mine/x", peer=peer, headers=headers)

    with pack(tmp_path) as context:
        made = exchange(
            context,
            mine("alice"),
            mine("alice", peer="198.51.100.8"),
            mine("alice", peer="198.51.100.9"),  # a third address does not reset alice's count
            mine("bob"),
            mine(None),
            mine(None),
            mine(None),
        )
    assert statuses(made) == [200, 200, 429, 200, 200, 200, 429]


def test_a_storage_outage_lets_open_limits_through_and_refuses_closed_ones(
    tmp_path: Path,
) -> None:
    from demo.processes import free_port

    with pack(tmp_path, storage=f"redis://127.0.0.1:{free_port()}/0") as context:
        made = exchange(
            context,
            flow("app.example", "/open/a"),
            flow("app.example", "/open/b"),
            flow("app.example", "/closed/a", headers=[("Accept", "text/html")]),
        )
    assert statuses(made) == [200, 200, 503]
    refused = made[2].response
    assert refused is not None
    assert b"Protected by Warren" in (refused.content or b"")
    assert refused.headers["retry-after"] == "1"


def test_the_gateway_logs_what_warren_check_warns_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="warren.ratelimit"), pack(tmp_path):
        pass
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "policy.yaml:11: resources.app.rate_limits[1].per: per: user counts each client IP" in (
        warning
    )


# Real gateway processes.


def policy(backend: Backend, limits: str, resource_limits: str = "") -> str:
    return f"""\
version: 1
rate_limits:
{limits or "  []"}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, path: "/admin/*"}}
    rate_limits:
{resource_limits or "      []"}
"""


def tag() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    yield server
    server.stop()


def limited_policy(backend: Backend) -> str:
    return policy(
        backend,
        "  - {limit: 1000/minute}",
        '      - {limit: 3/minute, path: "/limited/*", headers: true, strategy: fixed}',
    )


def over_the_limit_is_429(gateway: Gateway, backend: Backend) -> None:
    marker = tag()
    remaining = []
    for index in range(3):
        response = gateway.get("app.example", f"/limited/{marker}/{index}")
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        remaining.append(response.headers["ratelimit-remaining"])
        assert 0 < int(response.headers["ratelimit-reset"]) <= 60
    assert remaining == ["2", "1", "0"]
    refused = gateway.get("app.example", f"/limited/{marker}/x", headers={"accept": "text/html"})
    assert refused.status_code == 429
    assert "Too many requests" in refused.text
    assert "Protected by Warren" in refused.text
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    api = gateway.get("app.example", f"/limited/{marker}/y")
    assert api.status_code == 429
    assert api.json()["status"] == 429
    assert len(backend.received(marker)) == 3
    # Elsewhere on the resource only the global limit counts, and it shows no headers.
    other = gateway.get("app.example", f"/{marker}")
    assert other.status_code == 200
    assert "ratelimit-limit" not in other.headers
    assert "rate limited by resources.app.rate_limits[0]: 3/minute per ip" in gateway.logs()


def test_over_the_limit_is_429_with_headers_and_nothing_is_forwarded(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    over_the_limit_is_429(start_gateway(limited_policy(backend)), backend)


def test_per_header_counts_each_value_and_the_address_without_one(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(
        policy(backend, "", '      - {limit: 2/minute, per: "header:X-Api-Key"}')
    )

    def status(key: str | None) -> int:
        headers = {"x-api-key": key} if key is not None else {}
        return gateway.get("app.example", f"/{tag()}", headers=headers).status_code

    assert [status("one") for _ in range(3)] == [200, 200, 429]
    assert status("two") == 200
    # Leaving the header out counts the client's address: no way around the limit.
    assert [status(None) for _ in range(3)] == [200, 200, 429]
    assert status("") == 429


def test_counters_survive_a_policy_reload(backend: Backend, start_gateway: GatewayFactory) -> None:
    limited = '      - {limit: 2/minute, path: "/limited/*"}'
    gateway = start_gateway(policy(backend, "", limited))
    assert [gateway.get("app.example", "/limited/a").status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    # Another limit above it, and another global one: the file, its digest and positions change.
    gateway.policy.write_text(
        policy(
            backend,
            "  - {limit: 1000/minute}",
            '      - {limit: 50/minute, path: "/x"}\n' + limited,
        )
    )
    eventually(lambda: "loaded:" in gateway.logs())
    assert gateway.get("app.example", "/limited/a").status_code == 429
    assert "rate limited by resources.app.rate_limits[1]" in gateway.logs()


def test_two_gateways_share_counters_in_redis(
    backend: Backend, start_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    text = policy(backend, "  - {limit: 4/minute, per: ip, headers: true}")
    settings = f"storage: {redis_server.url}\n"
    first = start_gateway(text, settings=settings, name="gw1")
    second = start_gateway(text, settings=settings, name="gw2")
    seen = []
    for gateway in (first, second, first, second):
        response = gateway.get("app.example", f"/{tag()}")
        seen.append((response.status_code, response.headers.get("ratelimit-remaining")))
    assert seen == [(200, "3"), (200, "2"), (200, "1"), (200, "0")]
    assert first.get("app.example", "/").status_code == 429
    assert second.get("app.example", "/").status_code == 429
    assert b"warren:{rl/sliding/*/" in redis_server.command("KEYS", "warren:*")  # global scope


def test_a_redis_outage_fails_open_or_closed_per_limit_and_recovers_by_itself(
    backend: Backend, start_gateway: GatewayFactory, redis_server: RedisServer
) -> None:
    gateway = start_gateway(
        policy(
            backend,
            "",
            '      - {limit: 3/minute, path: "/open/*", on_storage_error: open}\n'
            '      - {limit: 3/minute, path: "/closed/*", on_storage_error: closed}',
        ),
        settings=f"storage: {redis_server.url}\n",
    )

    def statuses(path: str, count: int) -> list[int]:
        return [gateway.get("app.example", f"{path}/{tag()}").status_code for _ in range(count)]

    assert statuses("/open", 4) == [200, 200, 200, 429]
    assert statuses("/closed", 4) == [200, 200, 200, 429]
    for outage in (1, 2):
        redis_server.stop()
        # Open: requests go on uncounted. Closed: a Warren page, 503. Neither crashes anything.
        assert statuses("/open", 6) == [200] * 6
        closed = gateway.get("app.example", "/closed/x", headers={"accept": "text/html"})
        assert closed.status_code == 503
        assert "Protected by Warren" in closed.text
        assert "retry-after" in closed.headers
        assert statuses("/closed", 5) == [503] * 5
        # Once per outage; the sign-in state's follower logs its own outage too, in its own time.
        assert len(re.findall(r"rate-limit storage \S+ is unreachable", gateway.logs())) == outage
        redis_server.start()  # the same port, empty: no persistence
        eventually(lambda: gateway.get("app.example", "/closed/y").status_code == 200)
        assert len(re.findall(r"rate-limit storage \S+ answers again", gateway.logs())) == outage
        # Counting again, in the restarted Redis.
        assert statuses("/open", 4) == [200, 200, 200, 429]
        assert 429 in statuses("/closed", 3)


def test_memory_storage_is_per_process(backend: Backend, start_gateway: GatewayFactory) -> None:
    text = policy(backend, "  - {limit: 1/minute}")
    first = start_gateway(text, name="gw1")
    second = start_gateway(text, name="gw2")
    assert [first.get("app.example", "/").status_code for _ in range(2)] == [200, 429]
    assert second.get("app.example", "/").status_code == 200


def test_requests_the_rules_refuse_are_not_counted(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "  - {limit: 2/minute}"))
    assert [gateway.get("app.example", "/admin/x").status_code for _ in range(4)] == [403] * 4
    assert gateway.get("app.example", "/").status_code == 200


def test_large_streamed_responses_carry_the_headers_too(start_gateway: GatewayFactory) -> None:
    """mitmproxy streams bodies over 1 MB (stream_large_bodies): their headers leave before the
    response hook runs, so Warren adds its headers in responseheaders."""
    body = b"x" * (3 << 20)

    class Large(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Large)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gateway = start_gateway(
            f"""\
version: 1
resources:
  big:
    host: big.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {server.server_address[1]}}}]
    rate_limits: [{{limit: 10/minute, headers: true}}]
"""
        )
        response = gateway.get("big.example", "/file")
        assert response.status_code == 200
        assert len(response.content) == len(body)
        assert (response.headers["ratelimit-limit"], response.headers["ratelimit-remaining"]) == (
            "10",
            "9",
        )
    finally:
        server.shutdown()
        server.server_close()
