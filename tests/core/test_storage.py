"""The `storage` setting: URLs checked, opened as a Redis client, passwords never shown (opened as
a limits storage: tests/core/ratelimit/test_counters.py)."""

import asyncio
from pathlib import Path

import pytest

from core.problems import ConfigError
from core.settings import load_settings
from tests.support.redis import RedisServer, require_redis_server


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("mongodb://db:27017", "is not a storage Warren supports"),
        ("redis+sentinel://s1:26379,s2:26379", "needs the sentinel service name"),
        ("redis://", "needs HOST or HOST:PORT"),
        ("redis://db:99999/0", "needs HOST or HOST:PORT"),
        ("redis://:hunter2@db:6379/0", None),
        ("valkey://db", None),
    ],
)
def test_storage_urls_are_checked(tmp_path: Path, storage: str, message: str | None) -> None:
    path = write(tmp_path, f"storage: {storage}\n", "warren.yaml")
    if message is None:
        assert load_settings(path).storage == storage
        return
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(path)
    assert "storage" in str(raised.value)


def test_passwords_never_appear_in_messages() -> None:
    from core.storage import check_storage_url, redact

    assert redact("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert redact("rediss://warren:hunter2@db") == "rediss://warren:***@db"
    with pytest.raises(ValueError, match="not a storage") as raised:
        check_storage_url("mongo://u:hunter2@db")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("redis://:secret@127.0.0.1/2", ("127.0.0.1", 6379, 2)),
        ("valkey://127.0.0.1:6380/0", ("127.0.0.1", 6380, 0)),
        ("rediss://127.0.0.1:6390", ("127.0.0.1", 6390, 0)),
    ],
)
def test_sign_in_state_and_counters_read_the_same_url(
    url: str, where: tuple[str, int, int]
) -> None:
    from core.storage import redis_client

    client = redis_client(url)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs.get("db", 0)) == where


def test_a_unix_socket_and_a_sentinel_are_clients_too() -> None:
    from redis.asyncio.sentinel import SentinelConnectionPool

    from core.storage import redis_client

    unix = redis_client("redis+unix:///run/redis.sock?db=3")
    assert unix.connection_pool.connection_kwargs["path"] == "/run/redis.sock"
    assert unix.connection_pool.connection_kwargs["db"] == 3
    sentinel = redis_client("valkey+sentinel://10.0.0.1,10.0.0.2:26380/main")
    assert isinstance(sentinel.connection_pool, SentinelConnectionPool)
    assert sentinel.connection_pool.service_name == "main"
    # An unanswering sentinel is given up on, not waited for as long as TCP would.
    assert sentinel_timeout(sentinel.connection_pool) == 2
    timed = redis_client("redis+sentinel://127.0.0.1:1/main", socket_timeout=7)
    assert sentinel_timeout(timed.connection_pool) == 7


def sentinel_timeout(pool: object) -> object:
    from redis.asyncio.sentinel import SentinelConnectionPool

    assert isinstance(pool, SentinelConnectionPool)
    return pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["socket_timeout"]


def test_a_client_used_before_a_redis_restart_answers_after_it(tmp_path: Path) -> None:
    from core.storage import redis_client

    require_redis_server()
    server = RedisServer(tmp_path).start()

    async def scenario() -> None:
        client = redis_client(server.url)
        try:
            await client.set("k", "before")
            server.stop()
            server.start()  # the pooled connection is now a dead one
            assert await client.set("k", "after") is True
            assert await client.get("k") == b"after"
        finally:
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
