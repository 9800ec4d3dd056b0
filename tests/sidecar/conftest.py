"""Fixtures of the tunnel tests."""

from collections.abc import Iterator

import pytest

from tests.cluster.conftest import cluster  # noqa: F401  (the several-nodes lab, for test_nodes_e2e)
from tests.support.netlab import Lab
from tests.support.netns import require
from tests.support.redis import RedisServer, require_redis_server


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Network namespaces for one test, removed with everything in them afterwards."""
    require()
    made = Lab()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis, for what the sidecar reads of the other nodes."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()
