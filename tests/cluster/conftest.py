"""Fixtures of the several-nodes tests: a cluster lab per test, removed with all in it."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clusterlab import ClusterLab
from tests.support.netlab import Lab
from tests.support.netns import require


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ClusterLab]:
    """Two nodes, a site and Redis in network namespaces; the nodes not yet started."""
    require()
    lab = Lab()
    try:
        built = ClusterLab.build(lab, tmp_path / "cluster")
        built.start_redis()
        yield built
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(built.logs())
    finally:
        lab.close()
