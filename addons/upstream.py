"""Where to: a healthy target of the resource; the request is pointed at it with clean headers."""

from mitmproxy import http

from addons.exchange import Exchange, exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from addons.runtime import Runtime
from core import forwarding
from core.balance import target_key
from core.policy.model import Target


class Upstream:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or exchange.verdict is None or flow.response is not None:
            return
        assert exchange.resource is not None
        target = self.runtime.upstreams.pick(exchange.resource, exchange.client.ip)
        if target is None:
            refuse(flow, 503, reason=f"no healthy target for {exchange.resource.name}")
            return
        # A target on a site is reached through the site's tunnel (core.tunnels).
        address = self.runtime.sites.resolve(target)
        if address is None:
            refuse(flow, 503, reason=f"site {target.site} of {exchange.resource.name} is offline")
            return
        _rewrite_headers(flow, exchange)
        _point_at(flow.request, target, address)
        exchange.target = target
        exchange.routed = True
        self.runtime.upstreams.started(target_key(target))

    @fail_closed
    def response(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    def _finished(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is not None and exchange.target is not None and exchange.routed:
            exchange.routed = False  # count each request out once, whichever hook comes first
            self.runtime.upstreams.finished(target_key(exchange.target))


def _rewrite_headers(flow: http.HTTPFlow, exchange: Exchange) -> None:
    request = flow.request
    request.headers.fields = forwarding.rewrite(
        request.headers.fields,
        client_ip=str(exchange.client.ip),
        scheme="https" if flow.client_conn.tls_established else "http",
        host=request.host_header or "",
    )


def _point_at(request: http.Request, target: Target, address: tuple[str, int]) -> None:
    # Setting the destination rewrites Host/:authority; the backend must see the client's.
    host_header = request.host_header
    request.scheme = target.scheme
    request.host, request.port = address
    request.host_header = host_header
