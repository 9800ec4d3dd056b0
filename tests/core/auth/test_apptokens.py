"""Apps' bearer tokens on the shared sign-in state, in SQLite and in a real Redis: what opens
what, what is stored, revocation, and the copy in memory the gateway reads them from."""

import asyncio
import json
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest

from core.auth import apptokens, sessions
from core.auth.signinstate import KeyValue, RedisKV, SqliteKV

DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "redis"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> KeyValue:
    if request.param == "sqlite":
        return SqliteKV(tmp_path / "signin.sqlite3")
    return RedisKV(request.getfixturevalue("redis_url"))


def test_a_token_opens_its_resource_only_and_only_its_digest_is_stored(kv: KeyValue) -> None:
    async def scenario() -> None:
        text, record = await apptokens.create(kv, "alice", "photos", 90 * DAY, "phone")
        assert text.startswith(f"wrn_{record.token_id}_")
        stored = await kv.scan(apptokens.PREFIX + record.token_id)
        assert text.rpartition("_")[2] not in json.dumps(stored)  # the secret is never kept
        assert (await apptokens.verify(kv, text, "photos")).user == "alice"
        identity = record.identity()
        assert (identity.method, identity.user, identity.amr) == ("token", "alice", ("token",))
        with pytest.raises(apptokens.TokenRefused, match="for photos, not notes"):
            await apptokens.verify(kv, text, "notes")
        await kv.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "wrn_",
        "Bearer wrn_x",
        "wrn_0123456789abcdef_" + "A" * 43,  # an id nobody made
        "wrn_0123456789ABCDEF_" + "A" * 43,  # not an id at all
        "wrn_0123456789abcdef_" + "A" * 42 + "é",
    ],
)
def test_garbage_and_forged_tokens_are_refused(tmp_path: Path, forged: str) -> None:
    async def scenario() -> None:
        kv = SqliteKV(tmp_path / "signin.sqlite3")
        with pytest.raises(apptokens.TokenRefused):
            await apptokens.verify(kv, forged, "photos")
        await kv.close()

    asyncio.run(scenario())


def test_a_token_with_the_wrong_secret_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        kv = SqliteKV(tmp_path / "signin.sqlite3")
        text, _record = await apptokens.create(kv, "alice", "photos", DAY)
        last = text[-1]
        wrong = text[:-1] + ("B" if last != "B" else "C")
        with pytest.raises(apptokens.TokenRefused, match="wrong secret"):
            await apptokens.verify(kv, wrong, "photos")
        await kv.close()

    asyncio.run(scenario())


def test_revoking_a_token_or_its_user_ends_it_for_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "signin.sqlite3"
    gateway, command_line = SqliteKV(path), SqliteKV(path)

    async def scenario() -> None:
        one, first = await apptokens.create(command_line, "alice", "photos", DAY)
        two, second = await apptokens.create(command_line, "alice", "photos", DAY)
        await apptokens.verify(gateway, one, "photos")  # the gateway's copy is loaded
        assert [r.token_id for r in await apptokens.active(gateway)] == [
            first.token_id,
            second.token_id,
        ]
        assert await apptokens.revoke(command_line, first.token_id) == first
        with pytest.raises(apptokens.TokenRefused, match="revoked"):
            await apptokens.verify(gateway, one, "photos")
        assert await apptokens.revoke(command_line, first.token_id) is None  # not active now
        assert await apptokens.revoke(command_line, "../../etc") is None
        await apptokens.verify(gateway, two, "photos")
        await sessions.revoke_user(command_line, "alice", 3600)  # "sign out everywhere"
        with pytest.raises(apptokens.TokenRefused, match="revoked"):
            await apptokens.verify(gateway, two, "photos")
        assert await apptokens.active(gateway, "alice") == []
        await gateway.close()
        await command_line.close()

    asyncio.run(scenario())


def test_a_token_expires(tmp_path: Path) -> None:
    async def scenario() -> None:
        kv = SqliteKV(tmp_path / "signin.sqlite3")
        text, record = await apptokens.create(kv, "alice", "photos", DAY)
        await apptokens.verify(kv, text, "photos")  # known now: later checks take the short way
        # The record as it stands once its time is past (the store may keep it a moment longer).
        past = {**asdict(record), "expires": time.time() - 1}
        await kv.put(apptokens.PREFIX + record.token_id, json.dumps(past), 60)
        with pytest.raises(apptokens.TokenRefused, match="expired"):
            await apptokens.verify(kv, text, "photos")
        assert await apptokens.active(kv) == []
        await kv.close()

    asyncio.run(scenario())


def test_a_token_checked_before_is_refused_once_its_record_is_gone(tmp_path: Path) -> None:
    async def scenario() -> None:
        kv = SqliteKV(tmp_path / "signin.sqlite3")
        text, _record = await apptokens.create(kv, "alice", "photos", DAY)
        assert (await apptokens.verify(kv, text, "photos")).user == "alice"
        with pytest.raises(apptokens.TokenRefused, match="is for photos, not music"):
            await apptokens.verify(kv, text, "music")  # known, and still only for photos
        await kv.close()
        wiped = SqliteKV(tmp_path / "fresh.sqlite3")  # the state directory cleaned out
        with pytest.raises(apptokens.TokenRefused, match="unknown or expired"):
            await apptokens.verify(wiped, text, "photos")
        await wiped.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("lifetime", [timedelta(0), timedelta(days=401)])
def test_lifetimes_are_bounded(tmp_path: Path, lifetime: timedelta) -> None:
    async def scenario() -> None:
        kv = SqliteKV(tmp_path / "signin.sqlite3")
        with pytest.raises(ValueError, match="400 days"):
            await apptokens.create(kv, "alice", "photos", lifetime)
        await kv.close()

    asyncio.run(scenario())


def test_a_new_token_reaches_a_redis_readers_copy_in_memory(redis_url: str) -> None:
    gateway, command_line = RedisKV(redis_url), RedisKV(redis_url)

    async def scenario() -> None:
        gateway.follow()
        async with asyncio.timeout(10):
            while not gateway.in_step:
                await asyncio.sleep(0.01)
        text, record = await apptokens.create(command_line, "bob", "photos", DAY)
        # put() returns once every follower applied it: the copy has it, no round trip needed.
        assert gateway._mirror is not None
        assert apptokens.PREFIX + record.token_id in gateway._mirror
        await apptokens.verify(gateway, text, "photos")
        await apptokens.revoke(command_line, record.token_id)
        with pytest.raises(apptokens.TokenRefused, match="revoked"):
            await apptokens.verify(gateway, text, "photos")
        await gateway.close()
        await command_line.close()

    asyncio.run(scenario())
