"""Pushed documents (core.cluster.documents) in a real redis-server."""

import asyncio

from redis.asyncio import Redis

from core.cluster.documents import (
    HISTORY,
    Applied,
    Kind,
    PushedDocument,
    at_version,
    current,
    digest_of,
    push,
)
from core.cluster.registry import CHANGES
from core.storage import redis_client


async def _fresh(url: str) -> Redis:
    redis = redis_client(url)
    await redis.flushdb()
    return redis


def test_a_push_is_the_next_version_with_its_digest_and_author(redis_url: str) -> None:
    async def run() -> None:
        redis = await _fresh(redis_url)
        assert await current(redis, Kind.POLICY) is None
        first = await push(redis, Kind.POLICY, "version: 1\nresources: {}\n", "node-a")
        second = await push(redis, Kind.POLICY, "version: 1\n# ünïcode\nresources: {}\n", "b")
        users = await push(redis, Kind.USERS, "version: 1\nusers: {}\n", "node-a")
        assert (first.version, second.version, users.version) == (1, 2, 1)  # per kind
        assert second.digest == digest_of("version: 1\n# ünïcode\nresources: {}\n")
        assert await current(redis, Kind.POLICY) == second
        assert await current(redis, Kind.USERS) == users
        assert await at_version(redis, Kind.POLICY, 1) == first
        assert second.pushed_by == "b"
        assert second.pushed_at >= first.pushed_at
        await redis.aclose()

    asyncio.run(run())


def test_only_the_last_versions_are_kept(redis_url: str) -> None:
    async def run() -> None:
        redis = await _fresh(redis_url)
        for number in range(HISTORY + 3):
            await push(redis, Kind.USERS, f"# {number}\nversion: 1\n", "a")
        last = HISTORY + 3
        assert await at_version(redis, Kind.USERS, last - HISTORY) is None
        kept = [await at_version(redis, Kind.USERS, v) for v in range(last - HISTORY + 1, last + 1)]
        assert [document and document.version for document in kept] == list(
            range(last - HISTORY + 1, last + 1)
        )
        await redis.aclose()

    asyncio.run(run())


def test_pushes_at_once_never_interleave(redis_url: str) -> None:
    async def run() -> None:
        redis = await _fresh(redis_url)
        clients = [redis_client(redis_url) for _ in range(8)]
        pushed = await asyncio.gather(
            *(push(client, Kind.POLICY, f"# {n}\n", f"n{n}") for n, client in enumerate(clients))
        )
        assert sorted(document.version for document in pushed) == list(range(1, 9))
        last = max(pushed, key=lambda document: document.version)
        assert await current(redis, Kind.POLICY) == last  # the current one is the last version
        for document in pushed:  # and each version holds the text that got it
            assert await at_version(redis, Kind.POLICY, document.version) == document
        for client in clients:
            await client.aclose()
        await redis.aclose()

    asyncio.run(run())


def test_a_push_is_announced_on_the_cluster_channel(redis_url: str) -> None:
    async def run() -> None:
        redis = await _fresh(redis_url)
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(CHANGES)
            await push(redis, Kind.USERS, "version: 1\n", "a")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message["data"] == b"document:users"
        await redis.aclose()

    asyncio.run(run())


def test_a_node_takes_any_push_but_the_one_it_took() -> None:
    document = PushedDocument(Kind.POLICY, 3, "abc", "text", 100.0, "a")
    assert not document.is_taken_as(None)
    assert not document.is_taken_as(Applied(2, "old", 90.0))
    assert document.is_taken_as(Applied(3, "abc", 100.0))  # a restart takes it not again
    assert not document.is_taken_as(Applied(7, "lost", 150.0))  # the store lost its counter


def test_a_foreign_value_is_not_a_document() -> None:
    for value in ("[]", "{}", '{"kind": "other"}', "not json"):
        try:
            PushedDocument.from_json(value)
        except ValueError:
            continue
        raise AssertionError(f"{value!r} was read as a document")
