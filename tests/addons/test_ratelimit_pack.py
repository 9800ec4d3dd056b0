"""The RateLimit feature inside the Warren pack, in-process with mitmproxy's test helpers."""

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
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

from addons.exchange import exchange_of
from addons.pack import Warren, features
from addons.ratelimit import RateLimit
from addons.runtime import Runtime
from tests.addons.support import flow

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
    """Stands in for sign-in: it sets Exchange.user before RateLimit runs, as sign-in will."""

    def requestheaders(self, made: http.HTTPFlow) -> None:
        exchange = exchange_of(made)
        if exchange is not None and "x-test-user" in made.request.headers:
            exchange.user = made.request.headers["x-test-user"]


@contextmanager
def pack(tmp_path: Path, storage: str = "memory://") -> Iterator[taddons.context]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "warren.yaml").write_text(
        f"policy_file: policy.yaml\nstate_dir: state\nstorage: {storage}\n"
    )
    parts = features(Runtime())
    at = next(i for i, part in enumerate(parts) if isinstance(part, RateLimit))
    warren = Warren([*parts[:at], SignedIn(), *parts[at:]])
    with taddons.context(warren) as context:
        context.configure(warren, warren_config=str(tmp_path / "warren.yaml"))
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
