"""What nodes share of ACME (core.acme.shared): against a real redis-server, as two nodes."""

import asyncio
from pathlib import Path

from core.acme.shared import NodeOnly, RedisShared, open_shared
from tests.support.redis import RedisServer, require_redis_server


def test_memory_storage_shares_nothing_and_the_node_may_always_order() -> None:
    alone = open_shared("memory://")
    assert isinstance(alone, NodeOnly)

    async def run() -> None:
        assert await alone.account_key(b"mine") == b"mine"
        await alone.save("a.pem", b"pem")
        assert await alone.certificate("a.pem") is None
        async with alone.ordering("a.pem") as ours:
            assert ours

    asyncio.run(run())


def test_nodes_share_the_first_account_key_the_certificates_and_one_lock(tmp_path: Path) -> None:
    require_redis_server()
    redis = RedisServer(tmp_path).start()
    try:
        asyncio.run(_two_nodes(redis.url))
    finally:
        redis.stop()


async def _two_nodes(url: str) -> None:
    one, two = open_shared(url), open_shared(url)
    assert isinstance(one, RedisShared)
    assert await two.account_key(None) is None
    assert await one.account_key(b"key of one") == b"key of one"
    assert await two.account_key(b"key of two") == b"key of one"  # the first stays

    assert await two.certificate("app.pem") is None
    await one.save("app.pem", b"key and chain")
    assert await two.certificate("app.pem") == b"key and chain"

    async with one.ordering("app.pem") as ours:
        assert ours
        async with two.ordering("app.pem") as theirs:
            assert not theirs  # one node orders at a time
        async with two.ordering("other.pem") as another:
            assert another  # the lock is per certificate
    async with two.ordering("app.pem") as now_theirs:
        assert now_theirs  # released by the node that held it
    await one.close()
    await two.close()
