"""The shared sign-in state's copy in memory: another writer's revocation reaches a reader, from
SQLite at the next read, from Redis by push."""

import asyncio
import time
from pathlib import Path

import pytest

from core.auth import sessions
from core.auth.signinstate import RedisKV, SqliteKV
from core.storage import redis_client
from core.storagefailure import StorageUnavailable
from tests.support.redis import RedisServer, require_redis_server


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


def _stopped_redis(tmp_path: Path) -> RedisServer:
    require_redis_server()
    return RedisServer(tmp_path)


async def _in_step(kv: RedisKV) -> None:
    async with asyncio.timeout(20):
        while not kv.in_step:
            await asyncio.sleep(0.01)


def test_a_sign_out_is_applied_by_every_reader_before_it_returns(redis_url: str) -> None:
    """The writer waits for the readers' confirmation: no read after it returns misses it."""
    reader, writer = RedisKV(redis_url), RedisKV(redis_url)

    async def scenario() -> None:
        assert not await sessions.revoked(reader, "warm", None, 0)
        await _in_step(reader)
        for round_ in range(50):
            sid = f"ack-{round_}"
            assert not await sessions.revoked(reader, sid, None, 0)
            await sessions.revoke_session(writer, sid, time.time() + 60)
            assert await sessions.revoked(reader, sid, None, 0), f"round {round_}"
        await sessions.revoke_user(writer, "carol", 3600)
        assert await sessions.revoked(reader, "any", "carol", time.time() - 1)
        await reader.close()
        await writer.close()

    asyncio.run(scenario())


def test_a_reader_that_never_confirms_delays_a_sign_out_only_so_long(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that got the message but never applies it (a node cut off after Redis
    counted it) holds the writer for ACK_SECONDS, not for ever."""
    writer = RedisKV(redis_url)
    writer.ACK_SECONDS = 0.3
    silent = redis_client(redis_url)

    async def scenario() -> None:
        async with silent.pubsub() as pubsub:
            await pubsub.subscribe(RedisKV.CHANNEL)
            async with asyncio.timeout(10):
                await sessions.revoke_session(writer, "unconfirmed", time.time() + 60)
        assert await sessions.revoked(writer, "unconfirmed", None, 0)  # stored all the same
        await writer.close()
        await silent.aclose()

    asyncio.run(scenario())
    assert "0 of 1 processes following revocations confirmed it" in caplog.text


def test_last_known_keeps_deciding_from_the_last_copy_while_redis_is_down(tmp_path: Path) -> None:
    server = _stopped_redis(tmp_path).start()
    reader, writer = RedisKV(server.url), RedisKV(server.url)

    async def scenario() -> None:
        await sessions.revoke_session(writer, "gone", time.time() + 600)
        assert not await sessions.revoked(reader, "kept", None, 0)
        await _in_step(reader)
        server.stop()
        async with asyncio.timeout(20):
            while reader.in_step:  # the subscription notices the server is gone
                await asyncio.sleep(0.01)
        assert await sessions.revoked(reader, "gone", None, 0)
        assert not await sessions.revoked(reader, "kept", None, 0)
        with pytest.raises(StorageUnavailable):  # a sign-out cannot be recorded now
            await sessions.revoke_session(writer, "kept", time.time() + 600)
        with pytest.raises(StorageUnavailable):  # nor a one-time code taken
            await sessions.redeem_code(reader, "a-code")
        server.start()  # same port, no persistence: what it held is gone (docs/nodes.md)
        await _in_step(reader)
        await sessions.revoke_session(writer, "kept", time.time() + 600)
        assert await sessions.revoked(reader, "kept", None, 0)
        await reader.close()
        await writer.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_deny_refuses_to_decide_without_redis(tmp_path: Path) -> None:
    server = _stopped_redis(tmp_path).start()
    reader = RedisKV(server.url, on_storage_error="deny")

    async def scenario() -> None:
        assert not await sessions.revoked(reader, "s", None, 0)
        await _in_step(reader)
        server.stop()
        async with asyncio.timeout(20):
            while reader.in_step:
                await asyncio.sleep(0.01)
        with pytest.raises(StorageUnavailable):
            await sessions.revoked(reader, "s", None, 0)
        with pytest.raises(StorageUnavailable):
            await sessions.share_revoked(reader, "link")
        await reader.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_reader_that_never_loaded_revocations_cannot_decide_without_redis(
    tmp_path: Path,
) -> None:
    """last_known with nothing known is no answer: fail closed (503), not open."""
    server = _stopped_redis(tmp_path)  # never started
    reader = RedisKV(server.url)

    async def scenario() -> None:
        with pytest.raises(StorageUnavailable):
            await sessions.revoked(reader, "s", "alice", 0)
        await reader.close()

    asyncio.run(scenario())


def test_a_reader_that_follows_from_the_start_has_a_copy_before_any_request(
    tmp_path: Path,
) -> None:
    """A gateway idle since it started, when Redis goes away, still decides by a copy."""
    server = _stopped_redis(tmp_path).start()
    reader, writer = RedisKV(server.url), RedisKV(server.url)

    async def scenario() -> None:
        await sessions.revoke_session(writer, "gone", time.time() + 600)
        reader.follow()
        await _in_step(reader)
        server.stop()
        async with asyncio.timeout(20):
            while reader.in_step:
                await asyncio.sleep(0.01)
        assert await sessions.revoked(reader, "gone", None, 0)  # the first question asked
        assert not await sessions.revoked(reader, "kept", None, 0)
        await reader.close()
        await writer.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
