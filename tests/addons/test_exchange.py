"""What Warren knows about one request (addons.exchange): what a step reads before the step that
decides it has run is an error, never a silent None, so a misordered pipeline answers 500."""

import asyncio
import logging
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from mitmproxy.test import tflow

from addons.exchange import Exchange, NotYetDecided, attach, exchange_of
from addons.pipeline import Pipeline
from addons.routing import Routing
from addons.rules import Rules
from addons.runtime import Runtime, RuntimeSlot, build_runtime
from core.clientip import ClientAddress
from core.policy.model import Target
from core.policy.rules import Outcome, Verdict
from tests.support.inprocess import flow

POLICY = """\
version: 1
resources:
  app: {host: app.example, auth: public, targets: [{host: 192.0.2.10, port: 8080}]}
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "warren.yaml").write_text("policy_file: policy.yaml\nstate_dir: state\n")
    made = build_runtime(tmp_path / "warren.yaml", on_site_offline=lambda site: None)
    yield made
    asyncio.run(made.close())


def test_what_is_not_decided_yet_cannot_be_read(runtime: Runtime) -> None:
    exchange = Exchange(runtime, runtime.policy)
    reads: list[tuple[Callable[[], object], str]] = [
        (lambda: exchange.client, "the client address"),
        (lambda: exchange.resource, "the resource"),
        (lambda: exchange.verdict, "the rules' verdict"),
        (lambda: exchange.routed_to, "the target"),
    ]
    for read, what in reads:
        with pytest.raises(NotYetDecided, match=f"^{what} is read before the step that decides it"):
            read()
    # What no step has to decide reads as nothing yet.
    assert (exchange.identity, exchange.user, exchange.target, exchange.path) == (
        None,
        None,
        None,
        "",
    )


def test_what_a_step_decided_is_read_by_the_steps_after(runtime: Runtime) -> None:
    exchange = Exchange(runtime, runtime.policy)
    address = ip_address("198.51.100.7")
    exchange.client = ClientAddress(address, address, "peer")
    exchange.resource = runtime.policy.resources["app"]
    exchange.verdict = Verdict(Outcome.ALLOW, None)
    exchange.target = Target(host="192.0.2.10", port=8080)
    assert exchange.client.ip == address
    assert exchange.resource.name == "app"
    assert exchange.verdict.outcome is Outcome.ALLOW
    assert exchange.routed_to is exchange.target


def test_one_exchange_rides_on_each_flow(runtime: Runtime) -> None:
    made = tflow.tflow()
    assert exchange_of(made) is None
    made.metadata["warren"] = "something else's"
    assert exchange_of(made) is None
    exchange = attach(made, Exchange(runtime, runtime.policy))
    assert exchange_of(made) is exchange


def test_a_misordered_pipeline_answers_500(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    slot = RuntimeSlot()
    slot.swap(runtime)
    pipeline = Pipeline(slot, [Routing(), Rules()])  # the rules before the client address
    made = flow("app.example")
    with caplog.at_level(logging.ERROR, logger="warren.gateway"):
        asyncio.run(pipeline.requestheaders(made))
    assert made.response is not None
    assert made.response.status_code == 500
    assert "rules.requestheaders failed: NotYetDecided" in caplog.text
