import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from core.auth.signing import KeyRing
from core.cluster.heartbeat import Heartbeat, NodeFacts
from core.cluster.records import DocumentState, WireGuardFacts
from core.cluster.registry import Published, keys_key, live_nodes, remove
from core.storage import redis_client
from tests.support.redis import RedisServer, require_redis_server

FACTS = NodeFacts(
    url="https://a.example.com",
    wireguard=WireGuardFacts(
        public_key="k", endpoint="a.example.com:51820", subnet="100.89.1.0/24"
    ),
    policy=DocumentState(digest="abc"),
    users=DocumentState(digest="def", error="users.yaml: line 3: bad"),
    sites_online=("home",),
    ready=True,
    version="0.1.0",
)


def heartbeat(redis: Redis, keys: KeyRing, name: str = "a") -> Heartbeat:
    return Heartbeat(redis, name, lambda: FACTS, keys.own_jwks, keep_keys_for=3600, interval=0.01)


def against(redis_url: str, scenario: Callable[[Redis], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = redis_client(redis_url)
        await redis.flushdb()
        try:
            await scenario(redis)
        finally:
            await redis.aclose()

    asyncio.run(run())


def ring(directory: Path) -> KeyRing:
    keys = KeyRing(directory)
    keys.ensure()
    return keys


def test_a_beat_publishes_the_record_and_the_public_keys(redis_url: str, tmp_path: Path) -> None:
    keys = ring(tmp_path)

    async def scenario(redis: Redis) -> None:
        beat = heartbeat(redis, keys)
        assert await beat.beat() is Published.OK
        [record] = await live_nodes(redis)
        assert record.instance == beat.instance
        assert record.users == FACTS.users
        assert record.sites_online == ("home",)
        published = await redis.get(keys_key("a"))
        assert published is not None
        assert keys.kids()[0].encode() in published
        assert b'"d"' not in published  # never the private half

    against(redis_url, scenario)


def test_a_second_process_under_the_name_does_not_publish(redis_url: str, tmp_path: Path) -> None:
    async def scenario(redis: Redis) -> None:
        first, second = (
            heartbeat(redis, ring(tmp_path / "1")),
            heartbeat(redis, ring(tmp_path / "2")),
        )
        assert await first.beat() is Published.OK
        assert await second.beat() is Published.TAKEN
        [record] = await live_nodes(redis)
        assert record.instance == first.instance
        assert ring(tmp_path / "2").kids()[0].encode() not in (
            await redis.get(keys_key("a")) or b""
        )

    against(redis_url, scenario)


def test_a_removed_node_stops_heartbeating(redis_url: str, tmp_path: Path) -> None:
    async def scenario(redis: Redis) -> None:
        beat = heartbeat(redis, ring(tmp_path))
        await beat.beat()
        await remove(redis, "a", keep_for=60)
        async with asyncio.timeout(10):
            await beat.run()  # returns: removed
        assert beat.last is Published.REMOVED
        assert await live_nodes(redis) == []
        assert await redis.exists(keys_key("a")) == 0

    against(redis_url, scenario)


def test_withdraw_on_stop_leaves_the_list_but_keeps_the_keys(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario(redis: Redis) -> None:
        beat = heartbeat(redis, ring(tmp_path))
        await beat.beat()
        await beat.withdraw()
        assert await live_nodes(redis) == []
        assert await redis.exists(keys_key("a")) == 1  # sessions it signed keep verifying

    against(redis_url, scenario)


def test_the_heartbeat_waits_out_storage_being_down_and_carries_on(tmp_path: Path) -> None:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    keys = ring(tmp_path / "keys")

    async def scenario() -> None:
        redis = redis_client(server.url, socket_connect_timeout=1, socket_timeout=1)
        beat = heartbeat(redis, keys)
        running = asyncio.create_task(beat.run())
        try:
            async with asyncio.timeout(30):
                while not await live_nodes(redis):
                    await asyncio.sleep(0.01)
                server.stop()
                await asyncio.sleep(0.2)  # a few heartbeats fail meanwhile
                assert not running.done()
                server.start()  # empty: it persisted nothing
                while not await live_nodes(redis):
                    await asyncio.sleep(0.05)
                assert await redis.exists(keys_key("a")) == 1
        finally:
            running.cancel()
            await redis.aclose()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
