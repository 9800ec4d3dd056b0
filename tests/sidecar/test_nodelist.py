"""The nodes a registration answer lists, read from the heartbeats in a real Redis: every live
node with a URL, this one included, and the last list kept while storage is away."""

import asyncio
import time
from pathlib import Path

from core.cluster.records import NodeRecord
from core.cluster.registry import publish
from core.settings import load_settings
from core.storage import redis_client
from sidecar.nodelist import NodeList


def record(name: str, url: str | None) -> NodeRecord:
    now = time.time()
    return NodeRecord(name=name, url=url, instance=name, heartbeat=now, started=now)


def node_list(tmp_path: Path, storage: str, node: str) -> NodeList:
    (tmp_path / "warren.yaml").write_text(f"storage: {storage}\nnode: {node}\n")
    return NodeList(load_settings(tmp_path / "warren.yaml"))


def test_every_live_node_with_a_url_is_listed_with_this_one(tmp_path: Path, redis_url: str) -> None:
    nodes = node_list(tmp_path, redis_url, "{name: a, url: https://a.test}")

    async def scenario() -> None:
        redis = redis_client(redis_url)
        try:
            await redis.flushdb()
            await publish(redis, record("a", "https://stale.test"))  # its own: settings win
            await publish(redis, record("b", "https://b.test"))
            await publish(redis, record("c", None))  # no node.url: no agent can reach it
            await nodes.read(redis)
        finally:
            await redis.aclose()

    asyncio.run(scenario())
    assert nodes.current() == [
        {"name": "a", "url": "https://a.test"},
        {"name": "b", "url": "https://b.test"},
    ]


def test_storage_going_away_keeps_the_last_list(tmp_path: Path, redis_url: str) -> None:
    nodes = node_list(tmp_path, "redis://127.0.0.1:1/0", "{name: a}")
    nodes._others = [{"name": "b", "url": "https://b.test"}]

    async def scenario() -> None:
        following = asyncio.create_task(nodes.follow())
        await asyncio.sleep(0.5)  # a read or more, each refused
        assert not following.done()
        following.cancel()

    asyncio.run(scenario())
    assert nodes.current() == [{"name": "b", "url": "https://b.test"}]


def test_a_single_node_lists_itself_or_nothing(tmp_path: Path) -> None:
    assert node_list(tmp_path, "memory://", "{name: a}").current() == []
    listed = node_list(tmp_path, "memory://", "{name: a, url: 'https://a.test/'}").current()
    assert listed == [{"name": "a", "url": "https://a.test"}]
