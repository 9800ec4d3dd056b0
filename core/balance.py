"""Choosing a target for a request, with state that outlives any one policy version.

Health and in-flight counts are keyed by the target's address, so a reload that keeps a target
keeps what is known about it.
"""

import hashlib
from collections import defaultdict

from core.ipsets import IPAddress
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Target
from core.policy.routes import CompiledRoute

type TargetKey = tuple[str | None, str, str, int]  # site, scheme, host, port


def target_key(target: Target) -> TargetKey:
    return (target.site, target.scheme, target.host, target.port)


class Upstreams:
    def __init__(self) -> None:
        self._down: set[TargetKey] = set()  # failed their health check
        self._unroutable: frozenset[TargetKey] = frozenset()  # on a site that is offline
        self._out: frozenset[TargetKey] = frozenset()  # either; what `pick` skips
        self._active: defaultdict[TargetKey, int] = defaultdict(int)
        self._turn: defaultdict[str, int] = defaultdict(int)

    def pick(
        self, resource: CompiledResource, client: IPAddress, route: CompiledRoute | None = None
    ) -> Target | None:
        """One of the route's targets (without a route, the resource's), by its `balance`."""
        targets = resource.targets if route is None else route.targets
        if len(targets) == 1 and not self._out:
            return targets[0]
        healthy = [t for t in targets if target_key(t) not in self._out]
        if not healthy:
            return None
        strategy = resource.model.balance
        if strategy == "least_conn":
            return min(healthy, key=lambda t: self._active[target_key(t)])
        if strategy == "sticky":
            return max(healthy, key=lambda t: _affinity(client, t))
        turns = resource.name if route is None else route.key
        turn = self._turn[turns]
        self._turn[turns] = turn + 1
        return healthy[turn % len(healthy)]

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
        """ "unroutable" (its site is offline), "down" (failing its health check), else "up"."""
        if key in self._unroutable:
            return "unroutable"
        return "down" if key in self._down else "up"


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


def _affinity(client: IPAddress, target: Target) -> bytes:
    # Rendezvous hashing: stable across processes and nodes, and only the clients of a target
    # that goes away move elsewhere.
    seed = client.packed + f"{target.site}|{target.scheme}|{target.host}|{target.port}".encode()
    return hashlib.blake2b(seed, digest_size=8).digest()
