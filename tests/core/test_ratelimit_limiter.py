"""RateLimiter, the API other components count with: test/clear, outages, raw connections."""

import asyncio
import logging
import time
from ipaddress import ip_address
from pathlib import Path

import pytest

from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.ratelimit.enforce import admit_connection
from core.ratelimit.limiter import RateLimiter
from core.ratelimit.spec import parse_rate
from demo.processes import free_port
from tests.support.redis import RedisServer, require_redis_server


def test_test_counts_nothing_and_clear_forgets() -> None:
    """What brute-force regulation of a sign-in form needs: check before verifying a password,
    count failures, forget them after a success."""
    rate = parse_rate("2/minute")

    async def scenario() -> None:
        limiter = RateLimiter()
        for _ in range(3):
            assert (await limiter.test(rate, "signin", "alice")).allowed
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        refused = await limiter.test(rate, "signin", "alice")
        assert not refused.allowed
        assert 1 <= refused.retry_after() <= 60
        assert (await limiter.test(rate, "signin", "bob")).allowed
        await limiter.clear(rate, "signin", "alice")
        assert (await limiter.hit(rate, "signin", "alice")).allowed
        await limiter.close()

    asyncio.run(scenario())


def test_raw_connections_count_per_ip_against_the_resources_own_limits() -> None:
    policy = parse_policy(
        """
version: 1
rate_limits: [{limit: 1/minute}]
resources:
  game:
    protocol: tcp
    port: 25565
    targets: [{host: 127.0.0.1, port: 25565}]
    rate_limits: [{limit: 2/minute, per: ip}]
  free:
    protocol: udp
    port: 53
    targets: [{host: 127.0.0.1, port: 53}]
""",
        Capabilities(),
    )
    game, free = policy.resources["game"], policy.resources["free"]
    one, two = ip_address("198.51.100.1"), ip_address("2001:db8::1")

    async def scenario() -> None:
        limiter = RateLimiter()
        verdicts = [await admit_connection(limiter, game, one) for _ in range(3)]
        assert [v.refused_by is None for v in verdicts] == [True, True, False]
        refused = verdicts[2]
        assert refused.refused_by is not None
        assert refused.refused_by.key == "resources.game.rate_limits[0]"
        assert refused.decision is not None
        assert refused.decision.retry_after() >= 1
        assert (await admit_connection(limiter, game, two)).refused_by is None
        # The global (http) limit of 1/minute does not count raw connections.
        for _ in range(3):
            assert (await admit_connection(limiter, free, one)).refused_by is None
        await limiter.close()

    asyncio.run(scenario())


def test_an_unreachable_storage_decides_by_fail_mode_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rate = parse_rate("100/minute")

    async def scenario() -> None:
        limiter = RateLimiter(f"redis://:secret@127.0.0.1:{free_port()}/0")
        closed = await limiter.hit(rate, "k")  # the API's default is closed
        assert (closed.allowed, closed.storage_failed) == (False, True)
        opened = await limiter.hit(rate, "k", on_storage_error="open")
        assert (opened.allowed, opened.storage_failed) == (True, True)
        assert not (await limiter.test(rate, "k")).allowed
        await limiter.clear(rate, "k")  # best effort, never raises
        assert not limiter.healthy
        await limiter.close()

    with caplog.at_level(logging.INFO, logger="warren.ratelimit"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "is unreachable" in line]) == 1
    assert "secret" not in "\n".join(lines)


def test_redis_outage_then_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    rate = parse_rate("2/minute")

    async def scenario() -> None:
        limiter = RateLimiter(server.url, probe_interval=0.05)
        assert (await limiter.hit(rate, "k")).allowed
        server.stop()
        decisions = [await limiter.hit(rate, "k", on_storage_error="open") for _ in range(5)]
        assert all(d.allowed and d.storage_failed for d in decisions)
        assert limiter.outage is not None
        assert limiter.outage.affected == 5
        server.start()
        deadline = time.monotonic() + 10
        while not limiter.healthy:
            assert time.monotonic() < deadline, "the limiter never saw Redis come back"
            await asyncio.sleep(0.02)
        # Counting again (an empty Redis: the restart kept nothing).
        assert [(await limiter.hit(rate, "k")).allowed for _ in range(3)] == [True, True, False]
        await limiter.close()

    try:
        with caplog.at_level(logging.INFO, logger="warren.ratelimit"):
            asyncio.run(scenario())
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "is unreachable" in line]) == 1
    (back,) = [line for line in lines if "answers again after" in line]
    assert "5 decisions were made without it" in back
