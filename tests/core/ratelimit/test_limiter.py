"""RateLimiter, the API other components count with: test/clear and outages; and the three
strategies at their window edges, as the `limits` documentation describes them, counted through
Warren's RateLimiter in memory and in a real Redis.

- fixed window: the window starts at the first request; when it ends the whole budget returns at
  once, so a burst at the edge gets up to twice the limit through;
- moving window: a request is admitted while the Nth-oldest request in the log is older than the
  window, so capacity returns one request at a time, as old requests leave;
- sliding window counter: the previous window's count is weighted as if its requests were spread
  evenly over it, so right after the window moves on, a burst is still refused.

Time is driven by the library: waits poll `test()` (which counts nothing) until the limiter says a
request would pass, never sleeping for a guessed length.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.ratelimit.limiter import RateLimiter
from core.ratelimit.spec import Rate, parse_rate
from demo.processes import free_port
from tests.support.redis import RedisServer, require_redis_server


def test_test_counts_nothing_and_clear_forgets() -> None:
    """What brute-force regulation of a sign-in form needs: check before verifying a password,
    count failures, forget them after a success."""
    rate = parse_rate("2/minute")

    async def scenario() -> None:
        limiter = RateLimiter()
        for _ in range(3):
            assert (await limiter.test(rate, "signin", "alice")).allowed
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        refused = await limiter.test(rate, "signin", "alice")
        assert not refused.allowed
        assert 1 <= refused.retry_after() <= 60
        assert (await limiter.test(rate, "signin", "bob")).allowed
        await limiter.clear(rate, "signin", "alice")
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        await limiter.close()

    asyncio.run(scenario())


def test_an_unreachable_storage_decides_by_fail_mode_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rate = parse_rate("100/minute")

    async def scenario() -> None:
        limiter = RateLimiter(f"redis://:secret@127.0.0.1:{free_port()}/0")
        closed = await limiter.hit(rate, "k")  # the API's default is closed
        assert (closed.allowed, closed.storage_failed) == (False, True)
        opened = await limiter.hit(rate, "k", on_storage_error="open")
        assert (opened.allowed, opened.storage_failed) == (True, True)
        assert not (await limiter.test(rate, "k")).allowed
        await limiter.clear(rate, "k")  # best effort, never raises
        assert not limiter.healthy
        await limiter.close()

    with caplog.at_level(logging.INFO, logger="warren.ratelimit"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "is unreachable" in line]) == 1
    assert "secret" not in "\n".join(lines)


def test_redis_outage_then_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    rate = parse_rate("2/minute")

    async def scenario() -> None:
        limiter = RateLimiter(server.url, probe_interval=0.05)
        assert (await limiter.hit(rate, "k")).allowed
        server.stop()
        decisions = [await limiter.hit(rate, "k", on_storage_error="open") for _ in range(5)]
        assert all(d.allowed and d.storage_failed for d in decisions)
        assert limiter.outage is not None
        assert limiter.outage.affected == 5
        server.start()
        deadline = time.monotonic() + 10
        while not limiter.healthy:
            assert time.monotonic() < deadline, "the limiter never saw Redis come back"
            await asyncio.sleep(0.02)
        # Counting again (an empty Redis: the restart kept nothing).
        assert [(await limiter.hit(rate, "k")).allowed for _ in range(3)] == [True, True, False]
        await limiter.close()

    try:
        with caplog.at_level(logging.INFO, logger="warren.ratelimit"):
            asyncio.run(scenario())
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "is unreachable" in line]) == 1
    (back,) = [line for line in lines if "answers again after" in line]
    assert "5 decisions were made without it" in back


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


def scenario(storage: str, body: Callable[[RateLimiter, str], Awaitable[None]]) -> None:
    async def run() -> None:
        limiter = RateLimiter(storage)
        try:
            await body(limiter, uuid.uuid4().hex)
        finally:
            await limiter.close()

    asyncio.run(run())


async def hits(limiter: RateLimiter, rate: Rate, key: str, count: int) -> list[bool]:
    return [(await limiter.hit(rate, key)).allowed for _ in range(count)]


async def until_allowed(limiter: RateLimiter, rate: Rate, key: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not (await limiter.test(rate, key)).allowed:
        assert time.monotonic() < deadline, "the limit never let a request through again"
        await asyncio.sleep(0.01)


def test_fixed_window_returns_the_whole_budget_at_its_end(storage: str) -> None:
    rate = parse_rate("3/second", "fixed")

    async def body(limiter: RateLimiter, key: str) -> None:
        assert await hits(limiter, rate, key, 3) == [True, True, True]
        refused = await limiter.hit(rate, key)
        assert not refused.allowed
        assert (refused.limit, refused.remaining) == (3, 0)
        assert refused.retry_after() == 1
        await until_allowed(limiter, rate, key)
        # A new window: all three at once, six requests within about a second.
        assert await hits(limiter, rate, key, 4) == [True, True, True, False]

    scenario(storage, body)


def test_moving_window_frees_one_request_as_the_oldest_leaves(storage: str) -> None:
    rate = parse_rate("3/second", "moving")

    async def body(limiter: RateLimiter, key: str) -> None:
        before = time.time()
        assert await hits(limiter, rate, key, 1) == [True]
        after = time.time()
        while time.time() < after + 0.4:  # the scenario needs the others to be younger
            await asyncio.sleep(0.02)
        assert await hits(limiter, rate, key, 2) == [True, True]
        refused = await limiter.hit(rate, key)
        assert not refused.allowed
        # The window frees a place when the oldest request is a window old (Redis keeps its
        # timestamp to a tenth of a millisecond).
        assert before + 1 - 0.001 <= refused.reset <= after + 1 + 0.001
        await until_allowed(limiter, rate, key)
        # Only the oldest has left: one place, not a fresh budget of three.
        assert await hits(limiter, rate, key, 2) == [True, False]

    scenario(storage, body)


def test_sliding_window_weighs_the_previous_window_so_the_edge_admits_no_burst(
    storage: str,
) -> None:
    rate = parse_rate("4/second", "sliding")

    async def body(limiter: RateLimiter, key: str) -> None:
        if storage.startswith("memory"):
            # In memory (per the limits docs) the sampling periods are aligned to the clock, not
            # to the first request; start early in one so all four land in the same period.
            while time.time() % 1 > 0.5:
                await asyncio.sleep(0.01)
        assert await hits(limiter, rate, key, 5) == [True, True, True, True, False]
        # The period moves on; the previous one counts 4 x (time left of it / period): the
        # first place frees as soon as that drops below 4, the next one a quarter later.
        await until_allowed(limiter, rate, key)
        assert await hits(limiter, rate, key, 2) == [True, False]
        await until_allowed(limiter, rate, key)
        assert await hits(limiter, rate, key, 2) == [True, False]

    scenario(storage, body)


def test_several_windows_in_one_limit_each_count(storage: str) -> None:
    rate = parse_rate("3/second;4/minute", "fixed")

    async def body(limiter: RateLimiter, key: str) -> None:
        assert await hits(limiter, rate, key, 4) == [True, True, True, False]
        await until_allowed(limiter, rate, key)
        # The second is free again, but the minute has one place left of four.
        allowed = await limiter.hit(rate, key, stats=True)
        assert (allowed.allowed, allowed.limit, allowed.remaining) == (True, 4, 0)
        refused = await limiter.hit(rate, key)
        assert (refused.allowed, refused.limit) == (False, 4)
        assert refused.retry_after() > 1

    scenario(storage, body)


def test_counts_are_kept_apart_by_key_strategy_and_window(storage: str) -> None:
    async def body(limiter: RateLimiter, key: str) -> None:
        for strategy in ("fixed", "moving", "sliding"):
            rate = parse_rate("1/minute", strategy)
            assert await hits(limiter, rate, key + "a", 2) == [True, False]
            assert await hits(limiter, rate, key + "b", 1) == [True]
            assert await hits(limiter, parse_rate("1/hour", strategy), key + "a", 1) == [True]
        assert limiter.healthy  # Redis holds a different kind of value per strategy

    scenario(storage, body)
