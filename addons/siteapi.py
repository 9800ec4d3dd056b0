"""`/.warren/sites/` on any host of the node goes to the sidecar's registration API.

Sites register over the node's HTTPS address and certificate, so the sidecar opens no port of its
own. The request is routed like any other, through a resource Warren makes for it: the global
rules apply (a network the admin denies cannot register either), no sign-in (the secret is the
credential, checked by the sidecar), and the target is the sidecar's loopback listener. Only
while the policy has sites.
"""

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.runtime import Runtime
from core.paths import AmbiguousPath, canonicalize, split_target
from core.policy.compiled import CompiledResource
from core.policy.model import Resource, Target
from core.policy.rules import RuleSet
from core.settings import Listen
from core.tunnels import SITE_API_PREFIX

NAME = ".warren-sites"  # cannot be a resource's name in policy.yaml


def sidecar_resource(api: Listen) -> CompiledResource:
    model = Resource(
        host=("sites.warren.invalid",),
        targets=(Target(host=api.host, port=api.port),),
        auth="public",
    )
    return CompiledResource(NAME, model, RuleSet(f"resources.{NAME}.rules", ()))


class SiteApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._resource: CompiledResource | None = None
        self._api: Listen | None = None

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or flow.response is not None:
            return
        if not flow.request.path.startswith(SITE_API_PREFIX) or not exchange.policy.model.sites:
            return
        path, query = split_target(flow.request.path)
        try:
            canonical = canonicalize(path)
        except AmbiguousPath:
            return  # Routing refuses it
        exchange.resource = self._sidecar()
        exchange.path, exchange.match_path = canonical
        if canonical.path != path:
            flow.request.path = canonical.path + query

    def _sidecar(self) -> CompiledResource:
        settings = self.runtime.settings
        assert settings is not None  # ClientIp answers 503 without settings
        if self._resource is None or self._api != settings.wireguard.api:
            self._api = settings.wireguard.api
            self._resource = sidecar_resource(self._api)
        return self._resource
