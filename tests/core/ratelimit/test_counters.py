"""Every documented `storage` URL opens a limits storage: Warren's own in memory, or Redis."""

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage

from core.ratelimit.counters import open_storage
from core.storage import check_storage_url


@pytest.mark.parametrize(
    "storage",
    [
        "memory://",
        "redis://127.0.0.1:6379/0",
        "rediss://:pw@redis.example:6380/1",
        "redis+unix:///run/redis.sock?db=0",
        "redis+sentinel://s1:26379,s2:26379/mymaster",
        "valkey://127.0.0.1:6379/0",
        "valkeys://valkey.example",
        "valkey+sentinel://s1:26379/mymaster",
    ],
)
def test_documented_storage_urls_open_a_limits_storage(storage: str) -> None:
    opened = open_storage(check_storage_url(storage))
    assert isinstance(opened, MemoryStorage if storage == "memory://" else RedisStorage)
