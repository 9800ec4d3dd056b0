"""Warren's in-memory storage counts exactly as limits' own, and frees what has expired."""

import asyncio
import time
from collections.abc import Callable

import pytest
from limits.aio import strategies
from limits.aio.storage import MemoryStorage as LimitsMemoryStorage

from core.ratelimit.counters import open_storage
from core.ratelimit.memory import MemoryStorage
from core.ratelimit.spec import Strategy, parse_rate

_STRATEGIES: dict[str, Callable[[LimitsMemoryStorage], strategies.RateLimiter]] = {
    "fixed": strategies.FixedWindowRateLimiter,
    "moving": strategies.MovingWindowRateLimiter,
    "sliding": strategies.SlidingWindowCounterRateLimiter,
}


@pytest.mark.parametrize("strategy", ["fixed", "moving", "sliding"])
def test_decisions_and_window_stats_match_limits_own_storage(strategy: Strategy) -> None:
    rate = parse_rate("7/hour;3/minute", strategy)
    # Costs above one, a cost above the limit, and clients interleaved.
    plan = [("a", 1), ("b", 2), ("a", 1), ("a", 2), ("a", 1), ("b", 1), ("b", 4), ("a", 1)] * 2

    async def run(storage: LimitsMemoryStorage) -> list[tuple[bool, int]]:
        limiter = _STRATEGIES[strategy](storage)
        seen = []
        for client, cost in plan:
            for item in rate.items:
                allowed = await limiter.hit(item, "k", client, cost=cost)
                stats = await limiter.get_window_stats(item, "k", client)
                seen.append((allowed, stats.remaining))
        return seen

    async def scenario() -> None:
        ours = MemoryStorage()
        expected, got = await run(LimitsMemoryStorage()), await run(ours)
        assert got == expected
        assert any(not allowed for allowed, _ in got), "the plan never reaches the limit"
        await ours.aclose()

    asyncio.run(scenario())


def test_concurrent_hits_never_exceed_the_limit() -> None:
    rate = parse_rate("10/minute", "sliding")

    async def scenario() -> None:
        storage = MemoryStorage()
        limiter = strategies.SlidingWindowCounterRateLimiter(storage)
        results = await asyncio.gather(*(limiter.hit(rate.items[0], "x") for _ in range(50)))
        assert results.count(True) == 10
        await storage.aclose()

    asyncio.run(scenario())


def test_one_sweep_task_frees_expired_counters_and_entries() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        storage.sweep_interval = 0.05
        assert storage.timer is None  # nothing runs before the first count
        await storage.acquire_entry("moving", 5, 1)
        timer = storage.timer
        assert timer is not None
        await storage.incr("fixed", 1)
        await storage.acquire_sliding_window_entry("sliding", 5, 1)
        assert storage.timer is timer  # one task, not one per count
        assert storage.events
        assert storage.storage
        deadline = time.monotonic() + 10
        while storage.events or storage.storage:  # a second to expire (two for sliding)
            assert time.monotonic() < deadline, "expired entries were never swept"
            await asyncio.sleep(0.05)
        assert not storage.expirations
        assert not storage.locks
        await storage.aclose()
        assert timer.cancelled()
        assert storage.timer is None

    asyncio.run(scenario())


def test_sweep_keeps_what_is_still_counting() -> None:
    storage = MemoryStorage()
    now = time.time()
    storage.storage["old"], storage.expirations["old"] = 3, now - 1
    storage.storage["live"], storage.expirations["live"] = 2, now + 60
    storage.sweep(now)
    assert dict(storage.storage) == {"live": 2}
    assert storage.expirations == {"live": now + 60}


def test_memory_urls_open_warrens_storage() -> None:
    assert isinstance(open_storage("memory://"), MemoryStorage)
