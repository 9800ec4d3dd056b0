"""In-memory counting for a node without shared storage: limits' async MemoryStorage, made lean.

limits' storage guards each counter with an asyncio.Lock, awaits between reading a counter and
writing it, and starts a housekeeping task from every counting call; on a busy gateway that
cost several times more than the counting itself. On one event loop, code that never awaits
cannot be interleaved, so the counting methods here read and write in one synchronous step: no
lock, no task, no race to undo. They keep limits' data layout (`storage`, `expirations`,
`events`), so the methods inherited unchanged (window stats, `test`, `clear`) see the same counts.

Expired entries are freed by one sweep a second, a task the storage starts on its first count
and keeps as its `timer`, so that limits' own methods never start another.
"""

import asyncio
import bisect
import contextlib
import logging
import time
from math import floor

from limits.aio.storage import MemoryStorage as LimitsMemoryStorage
from limits.aio.storage.memory import Entry

log = logging.getLogger("warren.ratelimit")

SWEEP_INTERVAL_S = 1.0


class MemoryStorage(LimitsMemoryStorage):
    STORAGE_SCHEME = ["warren+memory"]  # limits registers every storage class by scheme
    sweep_interval = SWEEP_INTERVAL_S

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self._keep_house()
        return self._add(key, expiry, amount, time.time())

    async def get(self, key: str) -> int:
        return self._count(key, time.time())

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        self._keep_house()
        events = self.events.setdefault(key, [])
        now = time.time()
        if len(events) > limit - amount and events[limit - amount].atime >= now - expiry:
            return False
        events[:0] = [Entry(expiry)] * amount
        return True

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._count(previous_key, now)
        current = self._count(current_key, now)
        # The previous window's count weighs by how much of it still overlaps the last `expiry`
        # seconds (limits' formula, so its window stats agree).
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        if floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        self._keep_house()
        self._add(current_key, 2 * expiry, amount, now)  # kept for the next window's weighting
        return True

    async def aclose(self) -> None:
        """Stop the sweep (the counts stay)."""
        timer, self.timer = self.timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    def sweep(self, now: float | None = None) -> None:
        """Forget every expired counter and moving-window entry (reads check expiry anyway;
        this only frees memory)."""
        now = time.time() if now is None else now
        for key in [key for key, expires in self.expirations.items() if expires <= now]:
            self._forget(key)
        for key, events in list(self.events.items()):
            # Newest first: entries still alive come before the first expired one.
            alive = bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry)
            if alive:
                del events[alive:]
            else:
                del self.events[key]
                self.locks.pop(key, None)

    def _count(self, key: str, now: float) -> int:
        expires = self.expirations.get(key)
        if expires is None:
            return 0
        if expires <= now:
            self._forget(key)
            return 0
        return self.storage[key]

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        count = self._count(key, now) + amount
        self.storage[key] = count
        if count == amount:  # a new counter: its window starts now
            self.expirations[key] = now + expiry
        return count

    def _forget(self, key: str) -> None:
        self.storage.pop(key, None)
        self.expirations.pop(key, None)
        self.locks.pop(key, None)

    def _keep_house(self) -> None:
        if self.timer is None or self.timer.done():
            self.timer = asyncio.get_running_loop().create_task(self._housekeep())

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.sweep()
            except Exception:  # memory only: counting goes on, the next sweep tries again
                log.exception("sweeping the in-memory rate-limit storage failed")
