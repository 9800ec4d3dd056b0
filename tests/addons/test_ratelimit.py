"""Rate limits in real gateway processes, in front of a real backend; counters in memory, and in
a real redis-server shared by two gateways and stopped mid-test."""

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Backend, GatewayFactory, eventually
from tests.support.redis import RedisServer, require_redis_server


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


@pytest.mark.parametrize("kind", ["warren", "mitmdump"])
def test_over_the_limit_is_429_with_headers_and_nothing_is_forwarded(
    kind: str, backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(
        policy(
            backend,
            "  - {limit: 1000/minute}",
            '      - {limit: 3/minute, path: "/limited/*", headers: true, strategy: fixed}',
        ),
        kind=kind,
    )
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
        assert gateway.logs().count("is unreachable") == outage  # once per outage
        redis_server.start()  # the same port, empty: no persistence
        eventually(lambda: gateway.get("app.example", "/closed/y").status_code == 200)
        assert gateway.logs().count("answers again after") == outage
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
