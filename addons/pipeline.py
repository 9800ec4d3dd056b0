"""The request path as one ordered list of steps, the way proxy.py's plugin chain runs: each
step reads what the steps before it decided (`addons.exchange`), and the first step that answers
(sets `flow.response`) ends the request's path. A request no step answered or routed goes
nowhere (500). The order is `addons.pack.request_steps`, which is also its documentation.

After the request, the same steps see its response (`responseheaders`, `response`) and its
failure (`error`), each that has such a method, in the same order.

Fail closed: a step that raises answers 500 and ends the path (mitmproxy would log the exception
and carry on with the flow). `WARREN_FAILPOINTS=rules.requestheaders,...` makes the named step
methods raise, so tests can prove it against a real gateway (addons.failclosed).
"""

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import http

from addons import failclosed
from addons.exchange import Exchange, attach, exchange_of
from addons.headerindex import IndexedHeaders
from addons.respond import refuse, without_content_for_head
from addons.runtime import RuntimeSlot

log = logging.getLogger("warren.gateway")

type StepMethod = Callable[[http.HTTPFlow, Exchange], Any]

_PHASES = ("requestheaders", "request", "connect_failed", "responseheaders", "response", "error")
# Phases with no answer left to make: a step that fails in them is logged.
_UNANSWERED = ("connect_failed", "error")


def step_name(step: object) -> str:
    return type(step).__module__.rpartition(".")[2]


class Pipeline:
    def __init__(self, slot: RuntimeSlot, steps: Sequence[object]) -> None:
        self.slot = slot
        self.steps = list(steps)
        self._phases: dict[str, list[tuple[str, StepMethod, bool]]] = {}
        for phase in _PHASES:
            methods = []
            for step in self.steps:
                method = getattr(step, phase, None)
                if callable(method):
                    name = f"{step_name(step)}.{phase}"
                    if phase not in _UNANSWERED:
                        failclosed.HOOKS.append(name)
                    methods.append((name, method, inspect.iscoroutinefunction(method)))
            self._phases[phase] = methods

    @failclosed.fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        runtime = self.slot.runtime
        if runtime is None:
            refuse(flow, 503, reason="warren_config is not set")
            return
        exchange = attach(flow, Exchange(runtime, runtime.policy))
        # Every step looks the client's headers up; their names are lowered once for all of them.
        flow.request.headers = IndexedHeaders.of(flow.request.headers.fields)
        await self._answering("requestheaders", flow, exchange)
        self._gate(flow, exchange)

    @failclosed.fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or flow.response is not None:
            return  # answered at requestheaders
        await self._answering("request", flow, exchange)
        self._gate(flow, exchange)

    @failclosed.fail_closed
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is not None:
            await self._answering("responseheaders", flow, exchange)

    @failclosed.fail_closed  # after a failure earlier on, it answers 500 again (failclosed)
    async def response(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is not None:
            await self._every("response", flow, exchange)
        without_content_for_head(flow)  # every answer, Warren's own ones included

    async def connect_failed(self, flow: http.HTTPFlow) -> None:
        """The connection to the request's target failed, nothing was sent (addons.layers)."""
        exchange = exchange_of(flow)
        if exchange is not None:
            await self._every("connect_failed", flow, exchange)

    async def error(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is not None:
            await self._every("error", flow, exchange)

    async def _answering(self, phase: str, flow: http.HTTPFlow, exchange: Exchange) -> None:
        """The phase's steps in order until one answers (or fails, which answers 500)."""
        before = flow.response  # the application's, in responseheaders
        for name, method, is_async in self._phases[phase]:
            try:
                await _call(name, method, is_async, flow, exchange)
            except Exception as error:
                _fail(flow, name, error)
                return
            if flow.response is not before:
                exchange.answered_by = name.partition(".")[0]
                return
            if exchange.relayed_by is not None:
                return  # answered, or another node decided it and it is routed (addons.relay)

    async def _every(self, phase: str, flow: http.HTTPFlow, exchange: Exchange) -> None:
        """Every step of the phase: they count the request out, whatever came before."""
        for name, method, is_async in self._phases[phase]:
            try:
                await _call(name, method, is_async, flow, exchange)
            except Exception as error:
                log.error("%s failed: %r", name, error, exc_info=error, extra=failclosed.TRAFFIC)
                if phase == "response" and flow.websocket is None:
                    refuse(flow, 500, reason=f"internal error in {name}")

    def _gate(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        if flow.response is None and exchange.target is None:
            refuse(flow, 500, reason="request reached the gate without a decision")


async def _call(
    name: str, method: StepMethod, is_async: bool, flow: http.HTTPFlow, exchange: Exchange
) -> None:
    if failclosed.FAILPOINTS and name in failclosed.FAILPOINTS:
        raise failclosed.InjectedFault(name)
    if is_async:
        await method(flow, exchange)
    else:
        method(flow, exchange)


def _fail(flow: http.HTTPFlow, name: str, error: Exception) -> None:
    failclosed.answer_failure(flow, name, error)  # 500, or 503 when storage is down
