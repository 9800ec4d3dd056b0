"""`/.warren/healthz` and `/.warren/readyz` on every host, for health-checking DNS and load
balancers (docs/nodes.md, "Health checks and DNS"): answered before the resource is looked up,
so a monitor needs no resource of its own, and without sign-in or rules (what they say is
public, core.readiness).

healthz is 200 while this gateway serves; readyz 200 only when the node is ready (core.readiness),
else 503. The exact path only: `/.warren//readyz` and the like go on as any other request.
A readiness answer is reused for a second, so no one can make the gateway ping storage faster.
"""

import json
import time

from mitmproxy import http

from addons.exchange import Exchange
from core import readiness
from core.paths import split_target
from core.readiness import Readiness
from core.storage import is_shared

HEALTHZ = "/.warren/healthz"
READYZ = "/.warren/readyz"
REUSE_SECONDS = 1.0


class Probes:
    def __init__(self) -> None:
        self._last: tuple[float, object, Readiness] | None = None  # when, for which runtime

    async def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        path, _query = split_target(flow.request.path)
        if path not in (HEALTHZ, READYZ):
            return
        if flow.request.method not in ("GET", "HEAD"):
            _answer(flow, 405, {"status": "method not allowed"}, allow=True)
            return
        if path == HEALTHZ:
            _answer(flow, 200, readiness.alive().as_dict())
            return
        found = await self.readiness(exchange)
        _answer(flow, 200 if found.ready else 503, found.as_dict())

    async def readiness(self, exchange: Exchange) -> Readiness:
        """What /.warren/readyz answers (the metrics listener's /readyz too), reused a second."""
        now = time.monotonic()
        runtime = exchange.runtime
        last = self._last
        if last is not None and last[1] is runtime and now - last[0] < REUSE_SECONDS:
            return last[2]
        settings, policy = runtime.settings, exchange.policy
        sites = policy.model.sites
        found = readiness.assess(
            policy=readiness.OK,  # a runtime always holds a policy that loaded (PolicyStore)
            storage=await readiness.storage_check(
                is_shared(settings.storage), runtime.limiter.storage.check
            ),
            tunnel=readiness.tunnel_check(settings.wireguard.interface, bool(sites)),
            sites=readiness.sites_check(sites, runtime.sites.table.routable_sites()),
        )
        self._last = (time.monotonic(), runtime, found)
        return found


def _answer(flow: http.HTTPFlow, status: int, body: dict[str, object], allow: bool = False) -> None:
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    if allow:
        headers["allow"] = "GET, HEAD"
    flow.request.stream = False  # as addons.respond answers: nothing goes on, no 100 Continue
    flow.request.headers.pop("expect", None)
    flow.response = http.Response.make(status, json.dumps(body).encode() + b"\n", headers)
