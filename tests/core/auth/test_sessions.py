"""One-time codes and revocations through the shared sign-in state, in SQLite and in a real Redis."""

import asyncio
import json
import time
from pathlib import Path

import pytest

from core.auth import sessions
from core.auth.signinstate import KeyValue, RedisKV, SqliteKV


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


def test_share_links_are_recorded_listed_and_leave_the_listing_once_revoked(kv: KeyValue) -> None:
    async def scenario() -> None:
        now = time.time()
        first = sessions.ShareRecord("link-1", "app", "app.example", "/", now - 5, now + 3600)
        second = sessions.ShareRecord("link-2", "wiki", "wiki.example", "/a", now, now + 60)
        short = sessions.ShareRecord("link-3", "app", "app.example", "/", now, now + 0.2)
        for record in (second, first, short):
            await sessions.record_share(kv, record)
        assert [r.link_id for r in await sessions.active_shares(kv)][:2] == ["link-1", "link-2"]
        await sessions.revoke_share(kv, "link-1", now + 3600)
        assert await sessions.share_revoked(kv, "link-1")
        async with asyncio.timeout(10):  # the short one expires by itself
            while len(await sessions.active_shares(kv)) > 1:
                await asyncio.sleep(0.02)
        assert await sessions.active_shares(kv) == [second]
        # A record holds what the listing shows and no token (the link's secret).
        stored = await kv.scan("share:")
        assert {json.loads(value)["link_id"] for value in stored.values()} <= {"link-1", "link-2"}
        fields = {"link_id", "resource", "host", "path", "created", "expires"}
        assert all(set(json.loads(value)) == fields for value in stored.values())
        await kv.close()

    asyncio.run(scenario())
