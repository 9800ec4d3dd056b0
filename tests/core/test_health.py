"""Active health checks against small loopback servers: any answer below 500 within the timeout is
healthy; an error, a refused connection, silence or garbage is not; and the monitor marks targets
down and up again in Upstreams."""

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from core.balance import Upstreams, target_key
from core.health import HealthMonitor, probe
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import Health, Target
from core.problems import ConfigError
from demo.processes import free_port

QUICK = Health(path="/up", interval=timedelta(seconds=0.05), timeout=timedelta(seconds=0.5))


@asynccontextmanager
async def answering(first_line: bytes | None) -> AsyncIterator[int]:
    """A server that reads a request head and answers `first_line` (None: says nothing)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if first_line is None:
            await asyncio.sleep(5)
        else:
            writer.write(first_line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "healthy"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
        (b"HTTP/1.1 404 Not Found\r\n\r\n", True),
        (b"HTTP/1.1 499 Whatever\r\n\r\n", True),
        (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", False),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", False),
        (b"garbage\r\n", False),
        (None, False),  # silent past the timeout
    ],
)
def test_a_probe_is_healthy_below_500_within_the_timeout(
    answer: bytes | None, healthy: bool
) -> None:
    async def scenario() -> bool:
        async with answering(answer) as port:
            target = Target(host="127.0.0.1", port=port)
            return await probe(("127.0.0.1", port), target, QUICK)

    assert asyncio.run(scenario()) is healthy


def test_a_refused_connection_is_unhealthy() -> None:
    port = free_port()
    target = Target(host="127.0.0.1", port=port)
    assert asyncio.run(probe(("127.0.0.1", port), target, QUICK)) is False


def test_the_monitor_takes_a_failing_target_out_and_puts_it_back() -> None:
    async def scenario() -> None:
        answer = [b"HTTP/1.1 503 Busy\r\n\r\n"]

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer[0])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        policy = parse_policy(
            "version: 1\nresources:\n  app:\n    host: app.example\n"
            f"    targets: [{{host: 127.0.0.1, port: {port}}}]\n"
            "    health: {path: /up, interval: 50ms, timeout: 500ms}\n",
            Capabilities(),
        )
        key = target_key(policy.resources["app"].targets[0])
        upstreams = Upstreams()
        monitor = HealthMonitor(upstreams)
        monitor.update(policy)
        try:
            async with asyncio.timeout(10):
                while upstreams.is_up(key):
                    await asyncio.sleep(0.02)
                answer[0] = b"HTTP/1.1 200 OK\r\n\r\n"
                while not upstreams.is_up(key):
                    await asyncio.sleep(0.02)
        finally:
            monitor.stop()
            server.close()

    asyncio.run(scenario())


class Scripted:
    """A backend that answers its probes in turn from `script` (then the last one again), and
    records each probe's Host and whether the monitor had its target up when it arrived: the
    monitor and it share one event loop, so that is the state after the probes before."""

    def __init__(self, script: list[bytes] | None = None, by_host: str | None = None) -> None:
        self.script = script or [b"200 OK"]
        self.by_host = by_host  # answer 200 only for this Host, 503 for any other
        self.hosts: list[str] = []
        self.seen_up: list[bool] = []
        self.is_up: Callable[[], bool] = lambda: True

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        host = next(line[5:].strip() for line in head.split("\r\n") if line.startswith("Host:"))
        self.seen_up.append(self.is_up())
        self.hosts.append(host)
        status = self.script[min(len(self.hosts), len(self.script)) - 1]
        if self.by_host is not None:
            status = b"200 OK" if host == self.by_host else b"503 Not this name"
        writer.write(b"HTTP/1.1 " + status + b"\r\n\r\n")
        await writer.drain()
        writer.close()


def watch(backend: Scripted, resource: str, probes: int) -> None:
    """Run the monitor of `resource` (its targets' port is {port}) until `probes` arrived."""

    async def scenario() -> None:
        server = await asyncio.start_server(backend.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        policy = parse_policy(
            "version: 1\nresources:\n  app:\n" + resource.format(port=port), Capabilities()
        )
        key = target_key(policy.resources["app"].targets[0])
        upstreams = Upstreams()
        backend.is_up = lambda: upstreams.is_up(key)
        monitor = HealthMonitor(upstreams)
        monitor.update(policy)
        try:
            async with asyncio.timeout(10):
                while len(backend.hosts) < probes:
                    await asyncio.sleep(0.01)
        finally:
            monitor.stop()
            server.close()

    asyncio.run(scenario())


def test_fall_failed_probes_take_a_target_out_and_rise_good_ones_put_it_back() -> None:
    bad, good = b"503 Busy", b"200 OK"
    backend = Scripted([bad, bad, bad, good, good, good])
    watch(
        backend,
        "    host: app.example\n    targets: [{{host: 127.0.0.1, port: {port}}}]\n"
        "    health: {{path: /up, interval: 20ms, timeout: 500ms, fall: 3, rise: 2}}\n",
        probes=7,
    )
    assert backend.seen_up[:7] == [True, True, True, False, False, True, True]


def test_probes_ask_for_the_resources_name_so_a_backend_serving_by_host_answers_them() -> None:
    backend = Scripted(by_host="app.example")
    watch(
        backend,
        "    host: ['*.apps.example', app.example]\n"
        "    targets: [{{host: 127.0.0.1, port: {port}}}]\n"
        "    health: {{path: /up, interval: 20ms, timeout: 500ms}}\n",
        probes=3,
    )
    assert backend.hosts[:3] == ["app.example"] * 3
    assert backend.seen_up[:3] == [True, True, True]


def test_health_host_names_the_probes_host_and_a_backend_that_does_not_serve_it_is_down() -> None:
    backend = Scripted(by_host="app.example")
    watch(
        backend,
        "    host: app.example\n    targets: [{{host: 127.0.0.1, port: {port}}}]\n"
        "    health: {{path: /up, interval: 20ms, timeout: 500ms, host: status.internal}}\n",
        probes=2,
    )
    assert backend.hosts[:2] == ["status.internal"] * 2
    assert backend.seen_up[:2] == [True, False]


def test_a_wildcard_resource_probes_with_the_targets_host() -> None:
    backend = Scripted()
    watch(
        backend,
        "    host: '*.apps.example'\n    targets: [{{host: 127.0.0.1, port: {port}}}]\n"
        "    health: {{path: /up, interval: 20ms, timeout: 500ms}}\n",
        probes=1,
    )
    assert backend.hosts[0] == "127.0.0.1"


@pytest.mark.parametrize(
    ("health", "why"),
    [
        ("{fall: 0}", "health.fall"),
        ("{rise: 0}", "health.rise"),
        ("{host: '*.apps.example'}", "a host, not a wildcard"),
        ("{host: 'not a name'}", "is not a host name"),
    ],
)
def test_bad_health_settings_are_refused(health: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)):
        parse_policy(
            "version: 1\nresources:\n  app:\n    host: app.example\n"
            f"    targets: [{{host: 127.0.0.1, port: 1}}]\n    health: {health}\n",
            Capabilities(),
        )


def test_the_monitor_checks_the_targets_of_routes_too() -> None:
    async def scenario() -> None:
        refused = free_port()
        policy = parse_policy(
            "version: 1\nresources:\n  app:\n    host: app.example\n"
            "    routes:\n"
            f"      - {{path: /api/*, targets: [{{host: 127.0.0.1, port: {refused}}}]}}\n"
            "    health: {path: /up, interval: 50ms, timeout: 500ms}\n",
            Capabilities(),
        )
        key = target_key(policy.resources["app"].every_target[0])
        upstreams = Upstreams()
        monitor = HealthMonitor(upstreams)
        monitor.update(policy)
        try:
            async with asyncio.timeout(10):
                while upstreams.is_up(key):
                    await asyncio.sleep(0.02)
        finally:
            monitor.stop()

    asyncio.run(scenario())
