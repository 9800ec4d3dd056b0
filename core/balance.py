"""Choosing a target for a request, with state that outlives any one policy version.

Health, passive ejection and in-flight counts are keyed by the target's address, so a reload
that keeps a target keeps what is known about it.

Passive ejection: a target whose connection failed (refused, unreachable, connect timeout) is
passed over for `EJECT_FIRST` seconds, doubling while it keeps failing up to `EJECT_MAX`; when
its back-off is over, one request tries it (the trial) and the back-off starts again, so only
that one request can fail. A target that answers is back at once. It needs no `health:`; it is
a preference, never a refusal: when every candidate is ejected they are all tried, so a
resource with one target behaves as if there were no ejection.
"""

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from core.ipsets import IPAddress
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Target
from core.policy.routes import CompiledRoute

log = logging.getLogger("warren.health")

type TargetKey = tuple[str | None, str, str, int]  # site, scheme, host, port

EJECT_FIRST = 5.0  # seconds out of routing after the first failed connection
EJECT_MAX = 60.0  # the back-off doubles up to this while the target keeps failing


@dataclass(slots=True)
class Ejection:
    until: float  # monotonic time when the next trial request may go to it
    backoff: float  # the period it was out for this time


def target_key(target: Target) -> TargetKey:
    return (target.site, target.scheme, target.host, target.port)


class Upstreams:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ejected: dict[TargetKey, Ejection] = {}  # failed to connect (passive)
        self._down: set[TargetKey] = set()  # failed their health check
        self._unroutable: frozenset[TargetKey] = frozenset()  # on a site that is offline
        self._out: frozenset[TargetKey] = frozenset()  # either; what `pick` skips
        self._active: defaultdict[TargetKey, int] = defaultdict(int)
        self._turn: defaultdict[str, int] = defaultdict(int)

    def pick(
        self,
        resource: CompiledResource,
        client: IPAddress,
        route: CompiledRoute | None = None,
        without: TargetKey | None = None,
    ) -> Target | None:
        """One of the route's targets (without a route, the resource's) by its `balance`, never
        `without` (the target a retry leaves)."""
        targets = resource.targets if route is None else route.targets
        if len(targets) == 1 and not self._out and without is None:
            return targets[0]
        healthy = [t for t in targets if target_key(t) not in self._out]
        if without is not None:
            healthy = [t for t in healthy if target_key(t) != without]
        if self._ejected:
            healthy = self._not_ejected(healthy)
        if not healthy:
            return None
        chosen = self._choose(resource, client, healthy, route)
        if self._ejected and target_key(chosen) in self._ejected:
            self._trial(target_key(chosen))
        return chosen

    def _choose(
        self,
        resource: CompiledResource,
        client: IPAddress,
        healthy: list[Target],
        route: CompiledRoute | None,
    ) -> Target:
        strategy = resource.model.balance
        if strategy == "least_conn":
            return min(healthy, key=lambda t: self._active[target_key(t)])
        if strategy == "sticky":
            return max(healthy, key=lambda t: _affinity(client, t))
        turns = resource.name if route is None else route.key
        turn = self._turn[turns]
        self._turn[turns] = turn + 1
        return healthy[turn % len(healthy)]

    def _not_ejected(self, targets: list[Target]) -> list[Target]:
        now = self._clock()
        kept = [t for t in targets if _usable(self._ejected.get(target_key(t)), now)]
        return kept or targets  # every one ejected: try them all rather than answer none

    def _trial(self, key: TargetKey) -> None:
        # One request tries an ejected target once its back-off is over; the others keep
        # passing it over until that one has answered (`answered`) or failed (`connect_failed`).
        ejection = self._ejected[key]
        ejection.until = max(ejection.until, self._clock() + ejection.backoff)

    def connect_failed(self, key: TargetKey) -> None:
        """The target refused a connection, was unreachable or too slow to connect."""
        previous = self._ejected.get(key)
        backoff = EJECT_FIRST if previous is None else min(previous.backoff * 2, EJECT_MAX)
        self._ejected[key] = Ejection(self._clock() + backoff, backoff)
        log.warning(
            "target %s:%d failed to connect: out of routing for %gs", key[2], key[3], backoff
        )

    def answered(self, key: TargetKey) -> None:
        """The target answered a request: back in routing if it was ejected."""
        if self._ejected and self._ejected.pop(key, None) is not None:
            log.warning("target %s:%d answers again: back in routing", key[2], key[3])

    def is_ejected(self, key: TargetKey) -> bool:
        ejection = self._ejected.get(key)
        return ejection is not None and not _usable(ejection, self._clock())

    def started(self, key: TargetKey) -> None:
        self._active[key] += 1

    def finished(self, key: TargetKey) -> None:
        if self._active[key] > 0:
            self._active[key] -= 1

    def set_health(self, key: TargetKey, up: bool) -> None:
        if up == (key not in self._down):
            return
        if up:
            self._down.discard(key)
        else:
            self._down.add(key)
        self._out = frozenset(self._down) | self._unroutable

    def set_unroutable(self, keys: frozenset[TargetKey]) -> None:
        """Targets whose site's tunnel is down (core.tunnels): out of routing until it is back."""
        self._unroutable = keys
        self._out = frozenset(self._down) | keys

    def is_up(self, key: TargetKey) -> bool:
        return key not in self._down

    def active(self, key: TargetKey) -> int:
        return self._active[key]

    def state(self, key: TargetKey) -> str:
        """ "unroutable" (its site is offline), "down" (failing its health check), "ejected"
        (it failed to connect and its back-off is not over), else "up"."""
        if key in self._unroutable:
            return "unroutable"
        if key in self._down:
            return "down"
        return "ejected" if self.is_ejected(key) else "up"


def target_states(policy: Policy, upstreams: Upstreams) -> list[dict[str, object]]:
    """Every resource's targets as this gateway routes to them now, for the admin console (the
    gateway's `targets` control command): where each is, whether it is checked, its state."""
    return [
        {
            "resource": name,
            "site": target.site,
            "target": target.url,
            "checked": resource.model.health is not None,
            "state": upstreams.state(target_key(target)),
            "active": upstreams.active(target_key(target)),
        }
        for name, resource in sorted(policy.resources.items())
        for target in resource.every_target
    ]


def _usable(ejection: Ejection | None, now: float) -> bool:
    return ejection is None or ejection.until <= now


def _affinity(client: IPAddress, target: Target) -> bytes:
    # Rendezvous hashing: stable across processes and nodes, and only the clients of a target
    # that goes away move elsewhere.
    seed = client.packed + f"{target.site}|{target.scheme}|{target.host}|{target.port}".encode()
    return hashlib.blake2b(seed, digest_size=8).digest()
