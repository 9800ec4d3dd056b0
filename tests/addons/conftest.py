"""Fixtures of tests/addons: a gateway process shared by the tests of one module, for tests that
only send requests to it (a process start costs seconds on shared cores)."""

import sys
from collections.abc import Iterator

import pytest

from tests.support import gateway as gateways
from tests.support.gateway import Gateway, GatewayFactory


@pytest.fixture(scope="module")
def start_module_gateway(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[GatewayFactory]:
    """As start_gateway, but the gateways it starts serve the whole module and stop after it."""
    directory = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    failed_before = request.session.testsfailed
    started: list[Gateway] = []

    def start(
        policy: str,
        *,
        kind: str = "warren",
        env: dict[str, str] | None = None,
        settings: str = "",
        name: str = "gw",
    ) -> Gateway:
        gateway = gateways.launch(directory / name, policy, kind=kind, env=env, settings=settings)
        started.append(gateway)
        try:
            gateways.wait(gateway)
        except (RuntimeError, TimeoutError):
            pytest.fail(f"gateway did not start:\n{gateway.logs()}")
        return gateway

    yield start
    for gateway in started:
        gateways.stop(gateway)
        if request.session.testsfailed > failed_before:
            sys.stderr.write(f"\n--- {gateway.log} ---\n{gateway.logs()[-5000:]}\n")
