"""Counting, through the `limits` library's async API, in the node's storage.

`RateLimiter` is the small API every caller uses: the gateway (policy limits per request), the
sign-in portal (brute-force regulation of its form), raw TCP/UDP resources (connections per IP):

    limiter = RateLimiter(settings.storage)
    decision = await limiter.hit(parse_rate("5/minute"), "signin", username)
    if not decision.allowed: ...   # decision.retry_after() seconds to wait

A storage outage never raises to the caller. The first failed call logs once and starts a probe;
until the probe sees the storage answer again, calls do not touch the storage at all and are
decided by their `on_storage_error` (`open` allows, `closed` refuses). The recovery is logged
once too, with how long it lasted and how many decisions it affected.
"""

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, NamedTuple

from limits.aio import strategies
from limits.errors import StorageError

from core.ratelimit.counters import open_storage
from core.ratelimit.memory import MemoryStorage
from core.ratelimit.spec import FailMode, Rate, Strategy
from core.storage import redact

log = logging.getLogger("warren.ratelimit")

PROBE_INTERVAL_S = 0.5

_STRATEGIES: dict[Strategy, type[strategies.RateLimiter]] = {
    "fixed": strategies.FixedWindowRateLimiter,
    "moving": strategies.MovingWindowRateLimiter,
    "sliding": strategies.SlidingWindowCounterRateLimiter,
}
# What a storage may raise when it cannot answer; anything else is a bug and propagates.
_STORAGE_FAILURES = (StorageError, OSError, TimeoutError)


class Decision(NamedTuple):
    allowed: bool
    limit: int  # the amount of the window that decided (the tightest one, when allowed)
    remaining: int | None  # None: not asked for (stats=False) or unknown (storage failed)
    reset: float  # epoch seconds: when the deciding window frees capacity again
    storage_failed: bool = False

    def retry_after(self, now: float | None = None) -> int:
        """Whole seconds to wait, at least 1: what Retry-After says."""
        return max(1, math.ceil(self.reset - (time.time() if now is None else now)))

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The IETF draft's RateLimit-* fields (reset in seconds), and Retry-After on refusal."""
        now = time.time() if now is None else now
        fields = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining or 0),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset - now))),
        }
        if not self.allowed:
            fields["RateLimit-Reset"] = fields["Retry-After"] = str(self.retry_after(now))
        return fields


class Outage:
    __slots__ = ("affected", "error", "started")

    def __init__(self, error: BaseException) -> None:
        self.started = time.monotonic()
        self.error = error
        self.affected = 0


class RateLimiter:
    def __init__(self, storage_url: str = "memory://", *, probe_interval: float = PROBE_INTERVAL_S):
        self.url = redact(storage_url)
        self.storage: Any = open_storage(storage_url)
        self._strategies = {name: kind(self.storage) for name, kind in _STRATEGIES.items()}
        self._probe_interval = probe_interval
        self.outage: Outage | None = None
        self.outages = 0  # since start, for metrics (core.metrics.gateway)
        self.decided_without_storage = 0
        self._probe: asyncio.Task[None] | None = None
        self._allowed_by_amount: dict[int, Decision] = {}

    @property
    def healthy(self) -> bool:
        return self.outage is None

    async def hit(
        self,
        rate: Rate,
        *identifiers: str,
        on_storage_error: FailMode = "closed",
        stats: bool = False,
    ) -> Decision:
        """Count one request against every window of `rate`; the first full window refuses.

        The key is the identifiers, the strategy and the window: the same identifiers under
        another strategy or window count apart.

        `stats` also reads how much is left (one more storage call per window), for headers.
        """
        if self.outage is not None:
            return self._without_storage(rate, on_storage_error)
        strategy = self._strategies[rate.strategy]
        tightest: Decision | None = None
        try:
            for item in rate.items:
                if not await strategy.hit(item, *identifiers):
                    window = await strategy.get_window_stats(item, *identifiers)
                    return Decision(False, item.amount, 0, window.reset_time)
                if stats:
                    window = await strategy.get_window_stats(item, *identifiers)
                    if tightest is None or window.remaining < (tightest.remaining or 0):
                        tightest = Decision(True, item.amount, window.remaining, window.reset_time)
        except _STORAGE_FAILURES as error:
            self._storage_failed(error)
            return self._without_storage(rate, on_storage_error)
        return tightest or self._allowed(rate.items[0].amount)

    async def test(
        self, rate: Rate, *identifiers: str, on_storage_error: FailMode = "closed"
    ) -> Decision:
        """Would a hit be allowed? Counts nothing (e.g. before checking a password)."""
        if self.outage is not None:
            return self._without_storage(rate, on_storage_error)
        strategy = self._strategies[rate.strategy]
        try:
            for item in rate.items:
                if not await strategy.test(item, *identifiers):
                    window = await strategy.get_window_stats(item, *identifiers)
                    return Decision(False, item.amount, 0, window.reset_time)
        except _STORAGE_FAILURES as error:
            self._storage_failed(error)
            return self._without_storage(rate, on_storage_error)
        return Decision(True, rate.items[0].amount, None, time.time())

    async def clear(self, rate: Rate, *identifiers: str) -> None:
        """Forget the counts (e.g. after a successful sign-in). Best effort during an outage."""
        if self.outage is not None:
            return
        strategy = self._strategies[rate.strategy]
        try:
            for item in rate.items:
                await strategy.clear(item, *identifiers)
        except _STORAGE_FAILURES as error:
            self._storage_failed(error)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if isinstance(self.storage, MemoryStorage):
            await self.storage.aclose()
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _allowed(self, amount: int) -> Decision:
        # Allowed without stats is the common answer; one object per amount, not per request.
        decision = self._allowed_by_amount.get(amount)
        if decision is None:
            decision = self._allowed_by_amount[amount] = Decision(True, amount, None, 0.0)
        return decision

    def _without_storage(self, rate: Rate, on_storage_error: FailMode) -> Decision:
        self.decided_without_storage += 1
        if self.outage is not None:
            self.outage.affected += 1
        reset = time.time() + self._probe_interval
        return Decision(on_storage_error == "open", rate.items[0].amount, None, reset, True)

    def _storage_failed(self, error: BaseException) -> None:
        if self.outage is not None:
            return  # requests already in flight when it began; the outage is logged
        self.outage = Outage(error)
        self.outages += 1
        log.error(
            "rate-limit storage %s is unreachable (%s); until it answers again, limits with "
            "on_storage_error: open let requests through and closed ones refuse them",
            self.url,
            _reason(error),
        )
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_recovery())

    async def _wait_for_recovery(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                answered = bool(await self.storage.check())
            except Exception:  # any failure only means "not yet"
                answered = False
            if answered:
                break
        outage, self.outage, self._probe = self.outage, None, None
        assert outage is not None
        log.warning(
            "rate-limit storage %s answers again after %.1fs; %d decisions were made without it",
            self.url,
            time.monotonic() - outage.started,
            outage.affected,
        )


def _reason(error: BaseException) -> str:
    inner = getattr(error, "storage_error", None) or error
    return f"{type(inner).__name__}: {inner}"[:300]
