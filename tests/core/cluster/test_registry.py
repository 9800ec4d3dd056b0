import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from core.cluster.records import NodeRecord
from core.cluster.registry import (
    Published,
    index_key,
    keys_key,
    live_nodes,
    node_key,
    publish,
    readmit,
    remove,
    removed_names,
    withdraw,
)
from core.storage import redis_client


def record(name: str, instance: str = "one", **fields: Any) -> NodeRecord:
    now = time.time()
    return NodeRecord(name=name, instance=instance, heartbeat=now, started=now, **fields)


def against(redis_url: str, scenario: Callable[[Redis], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = redis_client(redis_url)
        await redis.flushdb()
        try:
            await scenario(redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_published_record_is_live_and_reads_back_whole(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        written = record("b", url="https://b.example.com", sites_online=("home",), ready=True)
        assert await publish(redis, written) is Published.OK
        assert await publish(redis, record("a")) is Published.OK
        nodes = await live_nodes(redis)
        assert [node.name for node in nodes] == ["a", "b"]
        assert nodes[1] == written

    against(redis_url, scenario)


def test_a_record_expires_on_its_own(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await publish(redis, record("a"), ttl=10)
        ttl = await redis.pttl(node_key("a"))
        assert 0 < ttl <= 10_000

    against(redis_url, scenario)


def test_a_second_process_under_a_live_name_is_refused(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        assert await publish(redis, record("a", "first")) is Published.OK
        assert await publish(redis, record("a", "second")) is Published.TAKEN
        assert await publish(redis, record("a", "first")) is Published.OK  # its next heartbeat
        [held] = await live_nodes(redis)
        assert held.instance == "first"

    against(redis_url, scenario)


def test_an_expired_name_can_be_taken_again(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await publish(redis, record("a", "first"))
        await redis.delete(node_key("a"))  # what expiry does
        assert await publish(redis, record("a", "second")) is Published.OK

    against(redis_url, scenario)


def test_removal_drops_the_record_and_keys_and_refuses_the_name(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await publish(redis, record("a"))
        await redis.set(keys_key("a"), '{"keys": []}')
        assert await remove(redis, "a", keep_for=60)
        assert await live_nodes(redis) == []
        assert await redis.exists(keys_key("a")) == 0
        assert await removed_names(redis) == {"a"}
        assert 0 < await redis.pttl("warren:cluster:removed:a") <= 60_000
        assert await publish(redis, record("a")) is Published.REMOVED
        assert await readmit(redis, "a")
        assert await publish(redis, record("a")) is Published.OK

    against(redis_url, scenario)


def test_withdraw_removes_only_its_own_record(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await publish(redis, record("a", "first"))
        await withdraw(redis, "a", "someone else")
        assert len(await live_nodes(redis)) == 1
        await withdraw(redis, "a", "first")
        assert await live_nodes(redis) == []

    against(redis_url, scenario)


def test_an_unreadable_record_is_skipped(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await redis.set(node_key("junk"), "not json")
        await redis.zadd(index_key("node"), {"junk": time.time()})
        await publish(redis, record("a"))
        assert [node.name for node in await live_nodes(redis)] == ["a"]
        assert await publish(redis, record("junk")) is Published.OK  # nothing live held it

    against(redis_url, scenario)


def test_names_come_from_the_index_not_a_scan_and_old_ones_are_pruned(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        await redis.set(node_key("unindexed"), record("unindexed").to_json())
        await redis.zadd(index_key("node"), {"gone": time.time() - 2 * 86400})
        await publish(redis, record("a"))
        assert [node.name for node in await live_nodes(redis)] == ["a"]
        assert await redis.zrange(index_key("node"), 0, -1) == [b"a"]

    against(redis_url, scenario)


def test_a_restarted_process_of_the_same_machine_takes_its_name_back(redis_url: str) -> None:
    async def scenario(redis: Redis) -> None:
        assert await publish(redis, record("a", "crashed", machine="m1")) is Published.OK
        assert await publish(redis, record("a", "twin", machine="m2")) is Published.TAKEN
        assert await publish(redis, record("a", "restarted", machine="m1")) is Published.OK
        [held] = await live_nodes(redis)
        assert held.instance == "restarted"

    against(redis_url, scenario)
