"""Fixtures of the tunnel tests."""

from collections.abc import Iterator

import pytest

from demo.netlab import Lab
from tests.sidecar.netns import require


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Network namespaces for one test, removed with everything in them afterwards."""
    require()
    made = Lab()
    try:
        yield made
    finally:
        made.close()
