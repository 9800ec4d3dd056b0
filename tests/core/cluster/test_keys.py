import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.auth.signing import KeyRing
from core.auth.tokens import TokenError, UnknownKey, mint, verify
from core.auth.verifier import Verifier
from core.cluster.keys import PublishedKeys, publish_keys
from core.cluster.registry import index_key, indexed, keys_key, remove
from core.storage import redis_client

ISSUER = "https://auth.example.com"
DAY = 86400.0


def ring(directory: Path) -> KeyRing:
    keys = KeyRing(directory)
    keys.ensure()
    return keys


def session(keys: KeyRing) -> str:
    return mint(keys, use="session", issuer=ISSUER, audience="app", subject="alice", lifetime=600)


def check(keys: KeyRing, token: str) -> str:
    return str(verify(keys, token, use="session", issuer=ISSUER, audience="app")["sub"])


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


def against(
    redis_url: str, scenario: Callable[[Redis, PublishedKeys], Awaitable[None]], own: str = "b"
) -> None:
    async def run() -> None:
        redis = redis_client(redis_url)
        await redis.flushdb()
        mirror = PublishedKeys(redis_url, own)
        try:
            await scenario(redis, mirror)
        finally:
            await mirror.close()
            await redis.aclose()

    asyncio.run(run())


def test_a_token_another_node_signed_verifies_by_its_published_key(
    redis_url: str, tmp_path: Path
) -> None:
    a, b = ring(tmp_path / "a"), ring(tmp_path / "b")

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        assert await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        b.published = mirror
        with pytest.raises(UnknownKey):
            check(b, session(a))
        await mirror.start()
        assert check(b, session(a)) == "alice"
        kids = [entry["kid"] for entry in b.jwks()["keys"]]
        assert kids == b.kids() + a.kids()  # its own first, then the others'
        assert all("d" not in entry for entry in b.jwks()["keys"])

    against(redis_url, scenario)


def test_published_keys_expire_a_session_after_the_last_heartbeat(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        await publish_keys(redis, "a", ring(tmp_path).own_jwks(), keep_for=DAY)
        assert 0 < await redis.pttl(keys_key("a")) <= DAY * 1000

    against(redis_url, scenario)


def test_own_published_keys_are_not_mirrored(redis_url: str, tmp_path: Path) -> None:
    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        await publish_keys(redis, "b", ring(tmp_path).own_jwks(), keep_for=DAY)
        await mirror.refresh()
        assert mirror.jwks_entries() == []

    against(redis_url, scenario)


def test_a_removed_node_is_untrusted_at_once_and_cannot_republish(
    redis_url: str, tmp_path: Path
) -> None:
    a, b = ring(tmp_path / "a"), ring(tmp_path / "b")
    verifier = Verifier(b, ISSUER)

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        b.published = mirror
        await mirror.start()
        token = session(a)
        assert verifier.check(token, "session", "app").identity.subject == "alice"
        await remove(redis, "a", keep_for=DAY)
        await until(lambda: mirror.public_key(a.kids()[0]) is None)  # the change message
        with pytest.raises(TokenError):
            verifier.check(token, "session", "app")  # not from the cache of good tokens
        assert not await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        assert await redis.exists(keys_key("a")) == 0

    against(redis_url, scenario)


def test_an_unknown_kid_asks_storage_again(redis_url: str, tmp_path: Path) -> None:
    a, b = ring(tmp_path / "a"), ring(tmp_path / "b")

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        b.published = mirror
        await mirror.refresh()  # no follower: only the unknown kid can bring the key
        await redis.set(keys_key("a"), '{"keys": []}')
        token = session(a)
        with pytest.raises(UnknownKey):
            check(b, token)
        await redis.delete(keys_key("a"))
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        with pytest.raises(UnknownKey):
            check(b, token)  # schedules a refresh, at most one a second
        await until(lambda: mirror.public_key(a.kids()[0]) is not None)
        assert check(b, token) == "alice"

    against(redis_url, scenario)


def test_a_rotation_announced_before_use_is_followed_by_the_others(
    redis_url: str, tmp_path: Path
) -> None:
    a, b = ring(tmp_path / "a"), ring(tmp_path / "b")

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        b.published = mirror
        await mirror.start()
        new, _ = a.rotate(keep_for=DAY)
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        await until(lambda: mirror.public_key(new.kid) is not None)
        assert check(b, session(a)) == "alice"

    against(redis_url, scenario)


def test_a_kid_two_nodes_claim_is_trusted_from_neither(redis_url: str, tmp_path: Path) -> None:
    a, c = ring(tmp_path / "a"), ring(tmp_path / "c")

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        forged = c.own_jwks()
        forged["keys"][0]["kid"] = a.kids()[0]
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        await publish_keys(redis, "c", forged, keep_for=DAY)
        await mirror.refresh()
        assert mirror.public_key(a.kids()[0]) is None

    against(redis_url, scenario)


def test_private_or_foreign_entries_are_ignored(redis_url: str, tmp_path: Path) -> None:
    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        await redis.set(keys_key("x"), '{"keys": [{"kty": "RSA", "kid": "r"}, {"kid": 3}]}')
        await redis.set(
            keys_key("y"),
            '{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "p", '
            '"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "secret"}]}',
        )
        await redis.set(keys_key("z"), "not json")
        await redis.zadd(index_key("keys"), {"x": 1, "y": 1, "z": 1})
        assert set(await indexed(redis, "keys", keys_key)) == {"x", "y", "z"}
        await mirror.refresh()
        assert mirror.jwks_entries() == []

    against(redis_url, scenario)


def test_a_request_with_a_kid_just_published_is_verified_by_looking_again(
    redis_url: str, tmp_path: Path
) -> None:
    a, b = ring(tmp_path / "a"), ring(tmp_path / "b")
    verifier = Verifier(b, ISSUER)

    async def scenario(redis: Redis, mirror: PublishedKeys) -> None:
        b.published = mirror  # never refreshed, no follower: only looking again finds the key
        await publish_keys(redis, "a", a.own_jwks(), keep_for=DAY)
        verified = await verifier.check_known(session(a), "session", "app")
        assert verified.identity.subject == "alice"

    against(redis_url, scenario)
