"""Fixtures of the core tests: a real Redis for the modules that count or keep state in it."""

from collections.abc import Iterator

import pytest

from tests.support.redis import RedisServer, require_redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()
