"""Brute-force regulation, modelled on Authelia's: failed sign-ins are counted per client address
and per user name, in several windows at once, so the lockout escalates: a few failures lock a
name for a minute, more lock it for an hour, more still for a day.

Counting goes through the `limits` library (moving windows) on the node's storage, opened like
the rate limits' (`core.ratelimit.counters.open_storage`): in memory for `memory://` (each
process counts its own), in Redis for every shared URL (every node counts together).

Addresses are keyed as the rate limits key them (`core.ratelimit.subjects.ip_subject`): an IPv6
client holds a whole /64 (by default) and would otherwise get a fresh allowance per address.
"""

import hashlib
import time
from collections.abc import Sequence
from typing import NamedTuple

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from core.ipsets import IPAddress
from core.ratelimit.counters import open_storage
from core.ratelimit.subjects import IPV6_PREFIX, ip_subject
from core.settings import Regulation as RegulationSettings

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
        ipv6_prefix: int = IPV6_PREFIX,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_name = tuple(per_name)
        self._per_address = tuple(per_address)
        self._ipv6_prefix = ipv6_prefix

    def _tiers(self, address: IPAddress, name: str) -> list[tuple[RateLimitItem, str, str, str]]:
        where = ip_subject(address, self._ipv6_prefix)
        tiers = [(item, "address", "ip", where) for item in self._per_address]
        if name:
            tiers += [(item, "name", "name", _name_key(name)) for item in self._per_name]
        return tiers

    async def locked(self, address: IPAddress, name: str) -> Lockout | None:
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

    async def failed(self, address: IPAddress, name: str) -> None:
        for item, _reason, kind, value in self._tiers(address, name):
            await self._limiter.hit(item, NAMESPACE, kind, value)


def open_regulation(storage: str, settings: RegulationSettings) -> Regulation:
    """The node's regulation, as warren.yaml's `regulation` and `storage` describe it."""
    return Regulation(
        open_storage(storage),
        parse_tiers(settings.per_user),
        parse_tiers(settings.per_ip),
        settings.ipv6_prefix,
    )
