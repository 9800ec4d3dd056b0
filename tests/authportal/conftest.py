"""Fixtures of the portal tests: nodes with sign-in on loopback, stopped after their test."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.loopback_node import LoopbackNode, LoopbackNodeFactory


@pytest.fixture
def start_node(
    tmp_path: Path, backend: Backend, request: pytest.FixtureRequest
) -> Iterator[LoopbackNodeFactory]:
    started: list[LoopbackNode] = []

    def start(extra_policy: str = "", settings: str = "", name: str = "node") -> LoopbackNode:
        node = loopback_node.prepare(tmp_path / name, backend.port, extra_policy, settings)
        started.append(node)
        try:
            loopback_node.start(node)
        except RuntimeError as error:
            pytest.fail(f"{error}:\n{node.logs()}")
        return node

    yield start
    report = getattr(request.node, "rep_call", None)
    for node in started:
        node.stop()
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- logs of {node.directory} ---\n{node.logs()[-6000:]}\n")
