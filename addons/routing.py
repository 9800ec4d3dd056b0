"""Which resource: by Host; and the one canonical path both rules and backend see."""

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from core.paths import AmbiguousPath, canonicalize, split_target


class Routing:
    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or flow.response is not None or exchange.resource is not None:
            return  # answered, or routed by Warren itself (addons.siteapi)
        host = flow.request.host_header
        resource = exchange.policy.resource_for(host) if host else None
        if resource is None:
            refuse(flow, 404, reason=f"no resource for host {host!r}")
            return
        path, query = split_target(flow.request.path)
        try:
            canonical = canonicalize(path)
        except AmbiguousPath as error:
            refuse(flow, 400, reason=str(error))
            return
        exchange.resource = resource
        exchange.path, exchange.match_path = canonical
        if canonical.path != path:
            flow.request.path = canonical.path + query
