"""Fixtures of every test: the demo backend, gateways, and the loopback backends of
tests.support, each stopped after its test."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import gateway as gateways
from tests.support.backend import Backend, running_backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.rawbackend import RawBackend
from tests.support.wsgi import WsgiBackend


@pytest.fixture(scope="session")
def backend() -> Iterator[Backend]:
    with running_backend() as running:
        yield running


@pytest.fixture
def start_gateway(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def start(
        policy: str,
        *,
        kind: str = "warren",
        env: dict[str, str] | None = None,
        settings: str = "",
        name: str = "gw",
    ) -> Gateway:
        gateway = gateways.launch(tmp_path / name, policy, kind=kind, env=env, settings=settings)
        started.append(gateway)
        try:
            gateways.wait(gateway)
        except (RuntimeError, TimeoutError):
            pytest.fail(f"gateway did not start:\n{gateway.logs()}")
        return gateway

    yield start
    failed = getattr(request.node, "rep_call", None)
    for gateway in started:
        gateways.stop(gateway)
        if failed is not None and failed.failed:
            sys.stderr.write(f"\n--- {gateway.log} ---\n{gateway.logs()[-5000:]}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def raw_backend() -> Iterator[RawBackend]:
    with RawBackend() as backend:
        yield backend


@pytest.fixture
def upgrading_backend() -> Iterator[RawBackend]:
    with RawBackend(upgrade=True) as backend:
        yield backend


@pytest.fixture
def wsgi_backend() -> Iterator[WsgiBackend]:
    with WsgiBackend() as backend:
        yield backend
