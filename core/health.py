"""Active health checks of HTTP targets; the results steer `core.balance.Upstreams`.

A probe is `GET health.path` with the Host `health.host`, by default the resource's first name
that is not a wildcard (a backend serving several names by Host answers the probe as it answers
the resource's requests), else the target's host. `fall` failed probes in a row take a target
out of routing, `rise` good ones in a row put it back (both 1 by default).
"""

import asyncio
import logging
import ssl
from collections.abc import Callable

from core.balance import TargetKey, Upstreams, target_key
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Health, Target

log = logging.getLogger("warren.health")

type Resolve = Callable[[Target], tuple[str, int] | None]
type Check = tuple[Health, str]  # the settings, and the Host the probes send


def direct(target: Target) -> tuple[str, int] | None:
    return target.host, target.port


def probe_host(resource: CompiledResource, target: Target) -> str:
    """The Host a resource's probes of `target` send."""
    health = resource.model.health
    if health is not None and health.host is not None:
        return health.host
    names = [name for name in resource.model.host or () if not name.startswith("*.")]
    return names[0] if names else _literal(target.host)


def _literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address, as Host writes it (RFC 3986)


async def probe(
    address: tuple[str, int], target: Target, health: Health, host: str | None = None
) -> bool:
    """Healthy: any answer below 500 to `GET path` within the timeout."""
    context = ssl.create_default_context() if target.scheme == "https" else None
    if context is not None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # reachability, not identity: requests verify
    try:
        async with asyncio.timeout(health.timeout.total_seconds()):
            reader, writer = await asyncio.open_connection(*address, ssl=context)
            try:
                writer.write(
                    f"GET {health.path} HTTP/1.1\r\nHost: {host or _literal(target.host)}\r\n"
                    "User-Agent: warren-health\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < 500


class HealthMonitor:
    def __init__(self, upstreams: Upstreams, resolve: Resolve = direct) -> None:
        self._upstreams = upstreams
        self._resolve = resolve
        self._tasks: dict[TargetKey, tuple[Check, asyncio.Task[None]]] = {}

    def update(self, policy: Policy) -> None:
        wanted: dict[TargetKey, tuple[Target, Check]] = {}
        for resource in policy.resources.values():
            if resource.model.health is None or resource.model.protocol != "http":
                continue
            for target in resource.every_target:
                check = (resource.model.health, probe_host(resource, target))
                wanted.setdefault(target_key(target), (target, check))
        for key in list(self._tasks):
            check, task = self._tasks[key]
            if key not in wanted or wanted[key][1] != check:
                task.cancel()
                del self._tasks[key]
                self._upstreams.set_health(key, True)
        for key, (target, check) in wanted.items():
            if key not in self._tasks:
                task = asyncio.create_task(self._watch(key, target, check))
                self._tasks[key] = (check, task)

    def stop(self) -> None:
        for _health, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _watch(self, key: TargetKey, target: Target, check: Check) -> None:
        health, host = check
        was_up, streak = True, 0  # probes in a row that disagree with was_up
        while True:
            address = self._resolve(target)
            up = address is not None and await probe(address, target, health, host)
            streak = 0 if up == was_up else streak + 1
            if streak >= (health.rise if up else health.fall):
                log.warning("target %s is %s", target.authority, "up" if up else "DOWN")
                was_up, streak = up, 0
            self._upstreams.set_health(key, was_up)
            await asyncio.sleep(health.interval.total_seconds())
