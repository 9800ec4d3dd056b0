"""Brute-force regulation, modelled on Authelia's: failed sign-ins are counted per client address
and per user name, in several windows at once, so the lockout escalates: a few failures lock a
name for a minute, more lock it for an hour, more still for a day.

Counting goes through the `limits` library (moving windows) on the node's storage, opened like
the rate limits' (`core.storage.open_storage`): in memory for `memory://` (each process counts
its own), in Redis for every shared URL (every node counts together).
"""

import hashlib
import time
from collections.abc import Sequence
from typing import NamedTuple

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

NAMESPACE = "warren-regulation"


def parse_tiers(texts: Sequence[str]) -> tuple[RateLimitItem, ...]:
    return tuple(parse(text) for text in texts)


class Lockout(NamedTuple):
    retry_after: float  # seconds until one more attempt is allowed
    reason: str  # "address" or "name"


def _name_key(name: str) -> str:
    # Names of any length and content reach the form; only a digest becomes a storage key.
    return hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]


class Regulation:
    def __init__(
        self,
        storage: Storage,
        per_name: Sequence[RateLimitItem],
        per_address: Sequence[RateLimitItem],
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_name = tuple(per_name)
        self._per_address = tuple(per_address)

    def _tiers(self, address: str, name: str) -> list[tuple[RateLimitItem, str, str, str]]:
        tiers = [(item, "address", "ip", address) for item in self._per_address]
        if name:
            tiers += [(item, "name", "name", _name_key(name)) for item in self._per_name]
        return tiers

    async def locked(self, address: str, name: str) -> Lockout | None:
        """Whether to refuse the attempt without even looking at the secret."""
        worst: Lockout | None = None
        for item, reason, kind, value in self._tiers(address, name):
            if await self._limiter.test(item, NAMESPACE, kind, value):
                continue
            stats = await self._limiter.get_window_stats(item, NAMESPACE, kind, value)
            wait = max(1.0, stats.reset_time - time.time())
            if worst is None or wait > worst.retry_after:
                worst = Lockout(wait, reason)
        return worst

    async def failed(self, address: str, name: str) -> None:
        for item, _reason, kind, value in self._tiers(address, name):
            await self._limiter.hit(item, NAMESPACE, kind, value)
