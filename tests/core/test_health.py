"""Active health checks against small loopback servers: any answer below 500 within the timeout is
healthy; an error, a refused connection, silence or garbage is not; and the monitor marks targets
down and up again in Upstreams."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from core.balance import Upstreams, target_key
from core.health import HealthMonitor, probe
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import Health, Target
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
