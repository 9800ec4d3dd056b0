"""The gateway's Prometheus metrics (core.metrics.gateway) and their listener (core.metrics.server):
a part of the pack for the listener's life, and the last step of the request path, where every
answered request is counted once, after every other step has seen its response.

The listener starts in `running` and stops in `done`, under `warren gateway` and mitmdump alike;
a new warren_config whose `metrics.gateway` differs moves it. One that cannot bind is a warning
(core.metrics.server), and the gateway serves on without metrics.
"""

import asyncio
import json

from mitmproxy import http

from addons import failclosed
from addons.exchange import Exchange
from addons.layers import CUT, Cut
from addons.outcome import decision_of, refusal_of, resource_name
from addons.probes import Probes
from addons.runtime import Runtime, RuntimeSlot
from core.metrics.gateway import NO_RESOURCE, GatewayMetrics, GatewayServices
from core.metrics.server import MetricsServer, Ready
from core.settings import MetricsListen

_COUNTED = "warren.metrics.counted"


class Metrics:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        self.metrics = GatewayMetrics(self._services)
        self._server: MetricsServer | None = None
        self._running = False
        self._probes = Probes()  # /readyz answers what /.warren/readyz answers, reused a second
        slot.on_swap(self._swapped)

    # -- the listener -----------------------------------------------------------------------

    async def running(self) -> None:
        self._running = True
        await self._start(self.slot.runtime)

    async def done(self) -> None:
        self._running = False
        await self._stop()

    def _swapped(self, runtime: Runtime) -> None:
        listen = runtime.settings.metrics.gateway
        serving = None if self._server is None else self._server.listen
        if self._running and listen != serving:
            asyncio.get_running_loop().create_task(self._restart(runtime))

    async def _restart(self, runtime: Runtime) -> None:
        await self._stop()
        await self._start(runtime)

    async def _start(self, runtime: Runtime | None) -> None:
        listen: MetricsListen | None = None if runtime is None else runtime.settings.metrics.gateway
        if listen is None:
            return
        server = MetricsServer(listen, self.metrics.registry, self._ready)
        if await server.start():
            self._server = server

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    def _services(self) -> GatewayServices | None:
        runtime = self.slot.runtime
        if runtime is None:
            return None
        return GatewayServices(runtime.store, runtime.limiter, runtime.geo, runtime.sites.table)

    async def _ready(self) -> Ready:
        runtime = self.slot.runtime
        if runtime is None:
            return Ready(False, "warren_config is not set")
        found = await self._probes.readiness(Exchange(runtime, runtime.policy))
        return Ready(found.ready, json.dumps(found.as_dict()))

    # -- the request path's last step -------------------------------------------------------

    def response(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        self._count(flow, exchange)

    def error(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        self._count(flow, exchange)

    def _count(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        metadata = flow.metadata
        if _COUNTED in metadata:
            return  # an error after the response (the client left mid-body): counted already
        metadata[_COUNTED] = True
        response = flow.response
        status = response.status_code if response is not None else 0
        resource = resource_name(exchange) or NO_RESOURCE
        latency = None
        refused_by = None
        if refusal_of(flow) is not None:
            refused_by = _reason(flow, exchange, status)
        elif response is not None and exchange.target is not None:
            sent = flow.request.timestamp_end
            answered = response.timestamp_start
            if sent is not None and answered is not None and answered >= sent:
                latency = answered - sent
        elif response is None and exchange.target is not None and not _client_left(flow):
            # The target failed or was cut off (addons.deadlines): the HTTP layer answered with
            # Warren's page, 502 unless a deadline said 504.
            refused_by = "upstream"
            cut = flow.metadata.get(CUT)
            status = cut.status if isinstance(cut, Cut) else 502
        identity = exchange.identity
        self.metrics.observe(
            resource,
            status,
            decision_of(flow, exchange),
            refused_by,
            latency,
            None if identity is None else identity.method,
        )


def _client_left(flow: http.HTTPFlow) -> bool:
    """The client went away before its answer (mitmproxy's HTTP/1 layer says so): nothing was
    refused, and no status reached it."""
    error = flow.error
    return error is not None and error.msg.startswith("Client disconnected")


def _reason(flow: http.HTTPFlow, exchange: Exchange, status: int) -> str:
    """The low-cardinality reason: the step that answered (rules, ratelimit, auth, routing, ...);
    a step that failed is failclosed; an answer about the target after it was chosen, upstream."""
    if failclosed.FAILED in flow.metadata:
        return "failclosed"
    if exchange.answered_by is not None:
        return exchange.answered_by
    if exchange.target is not None and status in (502, 503, 504):
        return "upstream"
    return "gateway"
