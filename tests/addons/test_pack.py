"""The pack (addons.pack): the request path in the order DESIGN.md writes it, and one addon that
hands each event only to the parts that handle it."""

import asyncio
from typing import Any

from mitmproxy import http

from addons.deadlines import Deadlines
from addons.pack import Warren, parts, request_steps, warren_addons
from addons.pipeline import Pipeline
from addons.runtime import RuntimeSlot
from tests.support.inprocess import flow


def test_the_request_path_is_in_the_order_of_the_design() -> None:
    beside, pipeline = parts(RuntimeSlot())
    assert [type(step).__name__ for step in pipeline.steps] == [
        "WellFormed",
        "Probes",
        "PlainHttp",
        "ClientIp",
        "Routing",
        "Relayed",
        "Reserved",
        "Rules",
        "Identify",
        "RateLimits",
        "Auth",
        "Upstream",
        "ProxyHeaderStep",
        "Deadlines",
        "Metrics",  # then the parts that count each request once it is answered
        "AccessLog",
    ]
    assert [type(part).__name__ for part in beside] == [
        "AcmeLoop",
        "Sync",
        "Cluster",
        "Config",
        "Certificates",
        "ClientCertificateRequest",
        "ProxyProtocolAccept",
        "ProxyHeaderConnections",
        "Layers",
        "RelayTls",
        "RawResources",
        "Deadlines",
        "Metrics",
        "AccessLog",
    ]


def test_the_deadlines_step_is_the_part_that_watches_connections() -> None:
    beside, pipeline = parts(RuntimeSlot())
    (deadlines,) = [part for part in beside if isinstance(part, Deadlines)]
    assert pipeline.steps[-3] is deadlines  # the last step that decides anything


def test_other_steps_can_stand_in_for_the_request_path() -> None:
    def only_deadlines(deadlines: Deadlines) -> list[object]:
        return [deadlines]

    _, pipeline = parts(RuntimeSlot(), only_deadlines)
    assert [type(step).__name__ for step in pipeline.steps] == ["Deadlines", "Metrics", "AccessLog"]
    _, whole = parts(RuntimeSlot(), request_steps)
    assert len(whole.steps) == 16


class Part:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls


class Lifecycle(Part):
    def configure(self, updated: set[str]) -> None:
        self.calls.append(f"{self.name}.configure {sorted(updated)}")

    async def running(self) -> None:
        await asyncio.sleep(0)
        self.calls.append(f"{self.name}.running")

    def requestheaders(self, made: http.HTTPFlow) -> None:
        self.calls.append(f"{self.name}.requestheaders")  # never: flows go to the pipeline


class Connections(Part):
    def running(self) -> None:
        self.calls.append(f"{self.name}.running")

    def client_disconnected(self, client: Any) -> None:
        self.calls.append(f"{self.name}.client_disconnected")


def test_each_event_goes_to_the_parts_that_handle_it_in_their_order() -> None:
    calls: list[str] = []
    warren = Warren([Lifecycle("a", calls), Connections("b", calls)], Pipeline(RuntimeSlot(), []))
    warren.configure({"warren_config"})
    asyncio.run(warren.running())
    warren.client_disconnected(object())
    warren.server_connect(object())  # nobody handles it: nothing happens
    assert calls == [
        "a.configure ['warren_config']",
        "a.running",  # awaited
        "b.running",  # called
        "b.client_disconnected",
    ]


def test_flow_events_go_to_the_pipeline_alone() -> None:
    calls: list[str] = []
    warren = Warren([Lifecycle("a", calls)], Pipeline(RuntimeSlot(), []))
    made = flow("app.example")
    asyncio.run(warren.requestheaders(made))
    assert calls == []
    assert made.response is not None
    assert made.response.status_code == 503  # the pipeline's: no warren_config yet


def test_warren_addons_is_the_whole_pack_as_one_addon_on_the_slot_given() -> None:
    slot = RuntimeSlot()
    (warren,) = warren_addons(slot)
    assert isinstance(warren, Warren)
    assert warren.pipeline.slot is slot
    assert [type(part).__name__ for part in warren.parts] == [
        "AcmeLoop",
        "Sync",
        "Cluster",
        "Config",
        "Certificates",
        "ClientCertificateRequest",
        "ProxyProtocolAccept",
        "ProxyHeaderConnections",
        "Layers",
        "RelayTls",
        "RawResources",
        "Deadlines",
        "Metrics",
        "AccessLog",
        "Pipeline",
    ]


def test_websocket_messages_are_relayed_not_kept() -> None:
    from mitmproxy.test import tflow

    websocket_flow = tflow.twebsocketflow()
    assert websocket_flow.websocket is not None
    assert websocket_flow.websocket.messages
    beside, pipeline = parts(RuntimeSlot())
    Warren(beside, pipeline).websocket_message(websocket_flow)
    assert websocket_flow.websocket.messages == []
