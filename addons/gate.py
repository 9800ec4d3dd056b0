"""The last Warren hook: a request no Warren hook answered or routed does not go anywhere."""

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse


def _unrouted(flow: http.HTTPFlow) -> bool:
    if flow.response is not None:
        return False
    exchange = exchange_of(flow)
    return exchange is None or exchange.target is None


class Gate:
    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if _unrouted(flow):
            refuse(flow, 500, reason="request reached the gate without a decision")

    @fail_closed
    def request(self, flow: http.HTTPFlow) -> None:
        if _unrouted(flow):
            refuse(flow, 500, reason="request reached the gate without a decision")
