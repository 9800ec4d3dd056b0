"""The request path as one ordered list of steps (addons.pipeline): called in order, ended by the
first that answers, failing closed; and what comes back, seen by every step. Stand-in steps on a
real Runtime built from files, driven with mitmproxy's test flows; the pack's own steps through
the in-process pack (tests.support.inprocess)."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tutils

from addons.exchange import Exchange, exchange_of
from addons.pipeline import Pipeline
from addons.runtime import RuntimeSlot, build_runtime
from core.policy.model import Target
from tests.support.inprocess import flow, pack, run

POLICY = """\
version: 1
resources:
  app: {host: app.example, auth: public, targets: [{host: 192.0.2.10, port: 8080}]}
"""


class Step:
    """Records each call in `calls`; answers, raises or routes when told to."""

    def __init__(
        self,
        name: str,
        calls: list[str],
        *,
        answers: int | None = None,
        raises: bool = False,
        routes: bool = False,
    ) -> None:
        self.name, self.calls = name, calls
        self.answers, self.raises, self.routes = answers, raises, routes

    def _called(self, phase: str, made: http.HTTPFlow, exchange: Exchange) -> None:
        self.calls.append(f"{self.name}.{phase}")
        if self.raises:
            raise RuntimeError(f"{self.name} broke")
        if self.routes:
            exchange.target = Target(host="192.0.2.10", port=8080)
        if self.answers is not None:
            made.response = http.Response.make(self.answers)

    def requestheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self._called("requestheaders", made, exchange)

    async def request(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self._called("request", made, exchange)

    def responseheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self._called("responseheaders", made, exchange)

    async def response(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self._called("response", made, exchange)

    def error(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self._called("error", made, exchange)


class RequestOnly:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def requestheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
        self.calls.append("request-only.requestheaders")


@pytest.fixture
def slot(tmp_path: Path) -> Iterator[RuntimeSlot]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "warren.yaml").write_text("policy_file: policy.yaml\nstate_dir: state\n")
    made = RuntimeSlot()
    runtime = build_runtime(tmp_path / "warren.yaml", on_site_offline=lambda site: None)
    made.swap(runtime)
    yield made
    asyncio.run(runtime.close())


def request_path(pipeline: Pipeline, made: http.HTTPFlow) -> http.HTTPFlow:
    async def go() -> None:
        await pipeline.requestheaders(made)
        await pipeline.request(made)

    asyncio.run(go())
    return made


def response_path(pipeline: Pipeline, made: http.HTTPFlow, status: int = 200) -> http.HTTPFlow:
    made.response = tutils.tresp(status_code=status)

    async def go() -> None:
        await pipeline.responseheaders(made)
        await pipeline.response(made)

    asyncio.run(go())
    return made


def status(made: http.HTTPFlow) -> int | None:
    return made.response.status_code if made.response is not None else None


def test_steps_run_in_their_order_each_phase(slot: RuntimeSlot) -> None:
    calls: list[str] = []
    steps = [Step("a", calls), RequestOnly(calls), Step("b", calls, routes=True)]
    pipeline = Pipeline(slot, steps)
    made = request_path(pipeline, flow("app.example"))
    assert status(made) is None  # routed: it goes on to the target
    assert calls == [
        "a.requestheaders",
        "request-only.requestheaders",
        "b.requestheaders",
        "a.request",
        "b.request",
    ]
    calls.clear()
    response_path(pipeline, made)
    assert calls == ["a.responseheaders", "b.responseheaders", "a.response", "b.response"]


def test_every_step_reads_the_one_exchange_of_the_request(slot: RuntimeSlot) -> None:
    seen: list[Exchange] = []

    class Reader:
        def requestheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
            seen.append(exchange)

    calls: list[str] = []
    made = request_path(
        Pipeline(slot, [Reader(), Step("b", calls, routes=True), Reader()]), flow("app.example")
    )
    runtime = slot.runtime
    assert runtime is not None
    assert seen[0] is seen[1] is exchange_of(made)
    assert (seen[0].runtime, seen[0].policy) == (runtime, runtime.policy)


def test_a_request_is_decided_by_the_runtime_it_started_with(
    slot: RuntimeSlot, tmp_path: Path
) -> None:
    seen: list[object] = []

    class Reader(Step):
        async def request(self, made: http.HTTPFlow, exchange: Exchange) -> None:
            seen.append(exchange.runtime)

    pipeline = Pipeline(slot, [Reader("reader", [], routes=True)])
    made = flow("app.example")
    started = slot.runtime
    swapped = build_runtime(tmp_path / "warren.yaml", on_site_offline=lambda site: None)

    async def go() -> None:
        await pipeline.requestheaders(made)
        slot.swap(swapped)  # a new warren_config lands between the head and the body
        await pipeline.request(made)

    asyncio.run(go())
    asyncio.run(swapped.close())
    assert seen == [started]


def test_the_first_step_that_answers_ends_the_path(slot: RuntimeSlot) -> None:
    calls: list[str] = []
    steps = [Step("a", calls), Step("b", calls, answers=403), Step("c", calls, routes=True)]
    made = request_path(Pipeline(slot, steps), flow("app.example"))
    assert status(made) == 403
    assert calls == ["a.requestheaders", "b.requestheaders"]  # not c, and no request phase


def test_an_answer_in_the_request_phase_ends_it_too(slot: RuntimeSlot) -> None:
    calls: list[str] = []

    class AnswersOnBody(Step):
        def requestheaders(self, made: http.HTTPFlow, exchange: Exchange) -> None:
            self.calls.append("body.requestheaders")

        async def request(self, made: http.HTTPFlow, exchange: Exchange) -> None:
            self._called("request", made, exchange)

    steps = [AnswersOnBody("body", calls, answers=413), Step("later", calls, routes=True)]
    made = request_path(Pipeline(slot, steps), flow("app.example"))
    assert status(made) == 413
    assert calls == ["body.requestheaders", "later.requestheaders", "body.request"]


def test_a_step_that_raises_answers_500_and_later_steps_are_not_called(
    slot: RuntimeSlot, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    steps = [Step("a", calls), Step("b", calls, raises=True), Step("c", calls, routes=True)]
    with caplog.at_level(logging.ERROR, logger="warren.gateway"):
        made = request_path(Pipeline(slot, steps), flow("app.example"))
    assert status(made) == 500
    assert calls == ["a.requestheaders", "b.requestheaders"]
    assert "test_pipeline.requestheaders failed: RuntimeError('b broke'); answering 500" in (
        caplog.text
    )
    exchange = exchange_of(made)
    assert exchange is not None
    assert exchange.target is None


def test_a_request_no_step_answered_or_routed_goes_nowhere(slot: RuntimeSlot) -> None:
    calls: list[str] = []
    made = request_path(Pipeline(slot, [Step("a", calls), Step("b", calls)]), flow("app.example"))
    assert status(made) == 500
    assert calls == ["a.requestheaders", "b.requestheaders"]  # the gate answered at once
    assert request_path(Pipeline(slot, []), flow("app.example")).response is not None


def test_every_step_sees_the_response_and_the_error_even_after_one_fails(
    slot: RuntimeSlot,
) -> None:
    calls: list[str] = []
    broken = Step("broken", calls, routes=True)
    pipeline = Pipeline(slot, [broken, Step("counter", calls)])
    made = request_path(pipeline, flow("app.example"))
    broken.raises = True
    calls.clear()

    async def respond_and_fail() -> None:
        made.response = tutils.tresp()
        await pipeline.response(made)

    asyncio.run(respond_and_fail())
    assert calls == ["broken.response", "counter.response"]  # counted out all the same
    assert status(made) == 500  # the application's answer does not go out after a failure
    calls.clear()
    asyncio.run(pipeline.error(made))
    assert calls == ["broken.error", "counter.error"]


def test_a_step_that_replaces_the_applications_response_ends_responseheaders(
    slot: RuntimeSlot,
) -> None:
    calls: list[str] = []
    steps = [Step("a", calls, routes=True), Step("b", calls), Step("c", calls)]
    pipeline = Pipeline(slot, steps)
    made = request_path(pipeline, flow("app.example"))
    steps[1].answers = 502
    calls.clear()
    response_path(pipeline, made)
    assert status(made) == 502
    assert calls == [
        "a.responseheaders",
        "b.responseheaders",
        "a.response",
        "b.response",
        "c.response",
    ]


# The pack's own steps, in the in-process pack.


def test_refusals_never_reach_a_backend(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        for host, path, expected in [
            ("nowhere.example", "/", 404),
            ("app.example", "/admin/panel", 403),
            ("app.example", "/a/%2e%2e/%2e%2e/x", 400),
            ("app.example", "/a%2fb", 400),
            ("private.example", "/", 401),
        ]:
            made = run(context, flow(host, path))
            assert status(made) == expected, (host, path)
            assert made.request.host == "127.0.0.1"  # never pointed at a target
            exchange = exchange_of(made)
            assert exchange is None or exchange.target is None


def test_an_unconfigured_pack_answers_503(tmp_path: Path) -> None:
    from mitmproxy.test import taddons

    from addons.pack import warren_addons
    from tests.support.inprocess import trigger

    with taddons.context(*warren_addons()) as context:
        made = flow("app.example")
        from mitmproxy.proxy.layers.http._hooks import HttpRequestHeadersHook

        trigger(context, made, HttpRequestHeadersHook)
        assert status(made) == 503
