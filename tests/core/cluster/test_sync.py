"""A node taking pushed documents into its files (core.cluster.sync), against a real
redis-server: the adopters on real files and a real PolicyStore, the loop on the real channel."""

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.auth.users import hash_secret, load_users
from core.cluster.documents import Kind, PushedDocument, push
from core.cluster.sync import DocumentSync, policy_adopter, read_applied, users_adopter
from core.policy.check import Capabilities
from core.policy.store import PolicyStore
from core.storage import redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

POLICY = """\
version: 1
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 1}]
    rules: [{action: deny, path: /%s}]
"""


@functools.cache
def users_text(name: str) -> str:
    return f"version: 1\nusers:\n  {name}:\n    password: '{hash_secret('correct horse')}'\n"


async def eventually(condition: Callable[[], bool], limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "not within the limit"
        await asyncio.sleep(0.02)


class Node:
    """One node's files and its sync, running in this process."""

    def __init__(self, directory: Path, url: str) -> None:
        directory.mkdir()
        self.directory = directory
        self.policy_file = directory / "policy.yaml"
        self.policy_file.write_text(POLICY % "local")
        self.users_file = directory / "users.yaml"
        self.store = PolicyStore(self.policy_file, Capabilities())
        self.redis = redis_client(url)
        self.sync = self._sync()

    def _sync(self) -> DocumentSync:
        adopters = {
            Kind.POLICY: policy_adopter(self.store),
            Kind.USERS: users_adopter(self.users_file),
        }
        return DocumentSync(self.redis, adopters, self.directory, poll_seconds=0.5)

    def restarted(self) -> DocumentSync:
        self.store = PolicyStore(self.policy_file, Capabilities())
        self.sync = self._sync()
        return self.sync


async def running[T](sync: DocumentSync, work: Callable[[], Awaitable[T]]) -> T:
    task = asyncio.create_task(sync.run())
    try:
        return await work()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_push_reaches_the_file_and_the_running_policy(tmp_path: Path, redis_url: str) -> None:
    async def run() -> None:
        node = Node(tmp_path / "a", redis_url)
        await node.redis.flushdb()

        async def work() -> None:
            pushed = await push(node.redis, Kind.POLICY, POLICY % "pushed", "b")
            await eventually(lambda: node.store.current.digest == pushed.digest)
            assert node.policy_file.read_text() == POLICY % "pushed"
            users = await push(node.redis, Kind.USERS, users_text("carol"), "b")
            await eventually(lambda: Kind.USERS in node.sync.applied)
            assert set(load_users(node.users_file).users) == {"carol"}
            assert node.sync.applied[Kind.USERS].version == users.version

        await running(node.sync, work)
        await node.redis.aclose()

    asyncio.run(run())


def test_a_push_this_node_refuses_keeps_its_file_and_is_said(
    tmp_path: Path, redis_url: str
) -> None:
    async def run() -> None:
        node = Node(tmp_path / "a", redis_url)
        await node.redis.flushdb()
        good = node.store.current

        async def work() -> PushedDocument:
            country = POLICY.replace("path: /%s", "country: [DE]")  # no country database here
            pushed = await push(node.redis, Kind.POLICY, country, "b")
            await eventually(lambda: Kind.POLICY in node.sync.refused)
            return pushed

        pushed = await running(node.sync, work)
        refusal = node.sync.refused[Kind.POLICY]
        assert (refusal.version, refusal.digest) == (pushed.version, pushed.digest)
        assert "country" in refusal.error
        assert node.store.current is good
        assert node.store.last_error == refusal.error
        assert node.policy_file.read_text() == POLICY % "local"
        assert Kind.POLICY not in node.sync.applied
        await node.redis.aclose()

    asyncio.run(run())


def test_a_restarted_node_does_not_take_again_what_it_took(tmp_path: Path, redis_url: str) -> None:
    async def run() -> None:
        node = Node(tmp_path / "a", redis_url)
        await node.redis.flushdb()
        pushed = await push(node.redis, Kind.POLICY, POLICY % "pushed", "b")
        await node.sync.check_all()
        assert read_applied(node.directory)[Kind.POLICY].version == pushed.version

        node.policy_file.write_text(POLICY % "edited by hand")  # after the push
        again = node.restarted()
        await again.check_all()
        assert node.policy_file.read_text() == POLICY % "edited by hand"

        newer = await push(node.redis, Kind.POLICY, POLICY % "newer", "b")
        await again.check_all()
        assert node.store.current.digest == newer.digest
        await node.redis.aclose()

    asyncio.run(run())


def test_a_node_whose_storage_is_down_keeps_its_files_and_catches_up(
    tmp_path: Path, redis_url: str
) -> None:
    from tests.support.redis import RedisServer

    async def run() -> None:
        server = RedisServer(tmp_path)
        node = Node(tmp_path / "a", server.url)  # nothing listens there yet

        async def work() -> None:
            await asyncio.sleep(1)  # the loop retries meanwhile
            assert node.store.current.digest != ""  # the local copy runs
            await asyncio.to_thread(server.start)
            try:
                pusher = redis_client(server.url)
                pushed = await push(pusher, Kind.POLICY, POLICY % "after the outage", "b")
                await eventually(lambda: node.store.current.digest == pushed.digest)
                await pusher.aclose()
            finally:
                await asyncio.to_thread(server.stop)

        await running(node.sync, work)
        await node.redis.aclose()

    asyncio.run(run())


def test_a_file_this_node_cannot_write_is_a_refusal_not_an_outage(
    tmp_path: Path, redis_url: str
) -> None:
    async def run() -> None:
        node = Node(tmp_path / "a", redis_url)
        await node.redis.flushdb()
        await push(node.redis, Kind.USERS, users_text("carol"), "b")
        node.users_file.mkdir()  # where the file should be: nothing can replace it
        await node.sync.check_all()
        assert "cannot write this node's users file" in node.sync.refused[Kind.USERS].error
        assert Kind.USERS not in node.sync.applied
        await node.redis.aclose()

    asyncio.run(run())


def test_a_value_no_push_wrote_is_ignored(tmp_path: Path, redis_url: str) -> None:
    async def run() -> None:
        node = Node(tmp_path / "a", redis_url)
        await node.redis.flushdb()
        await node.redis.set("warren:cluster:document:policy", "not a document")
        await node.sync.check_all()
        assert node.policy_file.read_text() == POLICY % "local"
        assert node.sync.refused == {}
        await node.redis.aclose()

    asyncio.run(run())


def test_a_node_follows_pushes_through_a_sentinel_failover(tmp_path: Path) -> None:
    """The Redis primary killed under real sentinels: the sync finds the promoted replica by
    itself and takes the next push from it."""
    from tests.support.sentinel import SentinelCluster, require_redis_sentinel

    require_redis_sentinel()
    sentinels = SentinelCluster(tmp_path / "sentinel").start()

    async def run() -> None:
        node = Node(tmp_path / "a", sentinels.url)

        async def work() -> None:
            pusher = redis_client(sentinels.url)
            first = await push(pusher, Kind.POLICY, POLICY % "before", "b")
            await eventually(lambda: node.store.current.digest == first.digest)
            await pusher.aclose()
            before = sentinels.master_port()
            await asyncio.to_thread(sentinels.kill_primary)
            await eventually(lambda: sentinels.master_port() not in (None, before), limit=60)
            pusher = redis_client(sentinels.url)
            second = await _pushed_when_answering(pusher, POLICY % "after")
            await eventually(lambda: node.store.current.digest == second.digest, limit=30)
            await pusher.aclose()

        await running(node.sync, work)
        await node.redis.aclose()

    try:
        asyncio.run(run())
    finally:
        sentinels.stop()


async def _pushed_when_answering(redis: "Redis", text: str) -> PushedDocument:
    from redis.exceptions import RedisError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            return await push(redis, Kind.POLICY, text, "b")
        except RedisError:  # the promoted replica may still be read-only for a moment
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
