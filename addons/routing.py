"""Which resource: the one canonical path both rules and backend see, then by Host (or the sites'
registration API, by path, on any host: addons.siteapi)."""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import refuse
from addons.siteapi import SiteApi
from core.hosts import normalise_host
from core.paths import AmbiguousPath, canonicalize, split_target


class Routing:
    def __init__(self) -> None:
        self.site_api = SiteApi()

    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        path, query = split_target(flow.request.path)
        try:
            canonical = canonicalize(path)
        except AmbiguousPath as error:
            refuse(flow, 400, reason=str(error))
            return
        host = flow.request.host_header
        settings = exchange.runtime.settings
        resource = self.site_api.resource_for(settings, exchange.policy, canonical.match)
        if resource is None:
            resource = exchange.policy.resource_for(host) if host else None
        if resource is None:
            refuse(flow, 404, reason=f"no resource for host {host!r}")
            return
        exchange.resource = resource
        exchange.host = normalise_host(host or "")
        exchange.path, exchange.match_path = canonical
        if canonical.path != path:
            flow.request.path = canonical.path + query
