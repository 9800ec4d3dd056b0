"""The shared sign-in state (SQLite, and Redis for real) and the brute-force regulation."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import sessions
from core.auth.kv import KeyValue, RedisKV, SqliteKV
from core.auth.regulation import Regulation, parse_tiers
from core.storage import open_storage
from tests.support.redis import RedisServer, require_redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> KeyValue:
    if request.param == "sqlite":
        return SqliteKV(tmp_path / "signin.sqlite3")
    return RedisKV(request.getfixturevalue("redis_url"))


def test_codes_work_once_and_only_for_their_lifetime(kv: KeyValue) -> None:
    async def scenario() -> None:
        grant = sessions.CodeGrant("app.example", "token", "session", "/", True)
        code = await sessions.issue_code(kv, grant)
        first, second = await asyncio.gather(
            sessions.redeem_code(kv, code), sessions.redeem_code(kv, code)
        )
        assert [first, second].count(grant) == 1
        assert [first, second].count(None) == 1
        assert await sessions.redeem_code(kv, "made-up") is None
        await kv.put("short", "1", 0.05)
        async with asyncio.timeout(10):  # polled, not slept: the entry expires by itself
            while await kv.get_many(["short"]):
                await asyncio.sleep(0.02)
        await kv.close()

    asyncio.run(scenario())


def test_revocation_of_sessions_users_and_links(kv: KeyValue) -> None:
    async def scenario() -> None:
        await sessions.revoke_session(kv, "s1", expires=time.time() + 60)
        assert await sessions.revoked(kv, "s1", "alice", 0)
        assert not await sessions.revoked(kv, "s2", "alice", 0)
        await sessions.revoke_user(kv, "alice", 60)
        now = time.time()
        assert await sessions.revoked(kv, "s2", "alice", now - 1)  # signed in before
        assert not await sessions.revoked(kv, "s3", "alice", now + 1)  # signed in after
        assert not await sessions.share_revoked(kv, "link")
        await sessions.revoke_share(kv, "link", now + 60)
        assert await sessions.share_revoked(kv, "link")
        assert await sessions.first_use(kv, "totp:alice:123456", 60)
        assert not await sessions.first_use(kv, "totp:alice:123456", 60)
        await kv.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_regulation_locks_a_name_and_an_address_with_escalating_windows(
    storage: str, request: pytest.FixtureRequest
) -> None:
    uri = "memory://" if storage == "memory" else request.getfixturevalue("redis_url")

    async def scenario() -> None:
        regulation = Regulation(
            open_storage(uri), parse_tiers(["2/minute", "3/hour"]), parse_tiers(["5/minute"])
        )
        name = f"alice-{storage}"
        for _ in range(2):
            assert await regulation.locked("192.0.2.1", name) is None
            await regulation.failed("192.0.2.1", name)
        lockout = await regulation.locked("192.0.2.2", name.upper())  # any address, any case
        assert lockout is not None
        assert lockout.reason == "name"
        assert 0 < lockout.retry_after <= 60
        assert await regulation.locked("192.0.2.1", "bob") is None
        for index in range(3):
            await regulation.failed("192.0.2.9", f"user{index}")
        assert await regulation.locked("192.0.2.9", "carol") is None
        for index in range(2):
            await regulation.failed("192.0.2.9", f"other{index}")
        address = await regulation.locked("192.0.2.9", "carol")
        assert address is not None
        assert address.reason == "address"

    asyncio.run(scenario())


def test_a_revocation_by_another_process_is_seen_on_the_next_read(tmp_path: Path) -> None:
    """The gateway reads revocations from memory; another writer's change reaches it at once."""
    path = tmp_path / "signin.sqlite3"
    gateway, portal = SqliteKV(path), SqliteKV(path)

    async def scenario() -> None:
        for round_ in range(20):
            sid = f"s{round_}"
            assert not await sessions.revoked(gateway, sid, "alice", 0)  # mirror loaded
            await sessions.revoke_session(portal, sid, time.time() + 60)
            assert await sessions.revoked(gateway, sid, "alice", 0)
        await gateway.close()
        await portal.close()

    asyncio.run(scenario())


def test_redis_revocations_reach_every_reader_by_push(redis_url: str) -> None:
    gateway, portal = RedisKV(redis_url), RedisKV(redis_url)

    async def scenario() -> None:
        await sessions.revoke_session(portal, "before", time.time() + 60)
        assert not await sessions.revoked(gateway, "s-push", "bob", 0)  # asks Redis, subscribes
        async with asyncio.timeout(10):
            while gateway._mirror is None:  # the copy in memory is in step
                await asyncio.sleep(0.01)
        assert await sessions.revoked(gateway, "before", "bob", 0)  # loaded when subscribing
        await sessions.revoke_session(portal, "s-push", time.time() + 60)
        async with asyncio.timeout(10):
            while not await sessions.revoked(gateway, "s-push", "bob", 0):
                await asyncio.sleep(0.01)
        await gateway.close()
        await portal.close()

    asyncio.run(scenario())
