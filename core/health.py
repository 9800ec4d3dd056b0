"""Active health checks of HTTP targets; the results steer `core.balance.Upstreams`."""

import asyncio
import logging
import ssl
from collections.abc import Callable

from core.balance import TargetKey, Upstreams, target_key
from core.policy.compiled import Policy
from core.policy.model import Health, Target

log = logging.getLogger("warren.health")

type Resolve = Callable[[Target], tuple[str, int] | None]


def direct(target: Target) -> tuple[str, int] | None:
    return target.host, target.port


async def probe(address: tuple[str, int], target: Target, health: Health) -> bool:
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
                    f"GET {health.path} HTTP/1.1\r\nHost: {target.host}\r\n"
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
        self._tasks: dict[TargetKey, tuple[Health, asyncio.Task[None]]] = {}

    def update(self, policy: Policy) -> None:
        wanted: dict[TargetKey, tuple[Target, Health]] = {}
        for resource in policy.resources.values():
            if resource.model.health is None or resource.model.protocol != "http":
                continue
            for target in resource.every_target:
                wanted.setdefault(target_key(target), (target, resource.model.health))
        for key in list(self._tasks):
            health, task = self._tasks[key]
            if key not in wanted or wanted[key][1] != health:
                task.cancel()
                del self._tasks[key]
                self._upstreams.set_health(key, True)
        for key, (target, health) in wanted.items():
            if key not in self._tasks:
                task = asyncio.create_task(self._watch(key, target, health))
                self._tasks[key] = (health, task)

    def stop(self) -> None:
        for _health, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _watch(self, key: TargetKey, target: Target, health: Health) -> None:
        was_up = True
        while True:
            address = self._resolve(target)
            up = address is not None and await probe(address, target, health)
            if up != was_up:
                log.warning("target %s is %s", target.authority, "up" if up else "DOWN")
                was_up = up
            self._upstreams.set_health(key, up)
            await asyncio.sleep(health.interval.total_seconds())
