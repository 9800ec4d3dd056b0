"""The Warren addon pack: each feature is its own addon class; mitmproxy sees one addon.

mitmproxy hands every event to every addon in its chain, at a few microseconds each, whether
the addon handles the event or not: with nine Warren addons that fan-out cost more per request
than Warren's own decisions. `Warren` holds the features in request order and calls, for each
event, only the features that handle it. Each feature class still works alone as a mitmproxy
addon (the unit tests load them that way).
"""

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import http

from addons.auth import Auth
from addons.clientip import ClientIp
from addons.config import Config
from addons.errorpages import ErrorPages
from addons.failclosed import fail_closed
from addons.gate import Gate
from addons.geo import Geo
from addons.health import Health
from addons.identify import Identify
from addons.ratelimit import RateLimit
from addons.raw import RawResources
from addons.reserved import Reserved
from addons.routing import Routing
from addons.rules import Rules
from addons.runtime import Runtime
from addons.siteapi import SiteApi
from addons.tunnels import Tunnels
from addons.upstream import Upstream

# The events Warren's features handle. A feature may handle any of them; the pack forwards.
_LIFECYCLE = ("load", "configure", "running", "done")
_FLOW = ("requestheaders", "request", "responseheaders", "response", "error")
# Per connection, not per request: raw TCP/UDP resources decide and route here.
_CONNECTION = ("client_connected", "client_disconnected", "server_connect", "next_layer")


def features(runtime: Runtime) -> list[object]:
    return [
        ErrorPages(),
        Config(runtime),
        Geo(runtime),
        ClientIp(runtime),
        SiteApi(runtime),
        Routing(),
        Reserved(runtime),  # /.warren/callback and /.warren/logout, before the rules
        Rules(runtime),
        Identify(runtime),  # who is asking, before rate limits keyed on the user
        RateLimit(runtime),
        Auth(runtime),
        Upstream(runtime),
        Gate(),
        Tunnels(runtime),  # before Health: its first probes already see where sites are
        Health(runtime),
        RawResources(runtime),
    ]


class Warren:
    def __init__(self, parts: Iterable[object]) -> None:
        self.parts = list(parts)
        self._handlers: dict[str, list[Callable[..., Any]]] = {
            event: [getattr(p, event) for p in self.parts if callable(getattr(p, event, None))]
            for event in (*_LIFECYCLE, *_FLOW, *_CONNECTION)
        }
        self._async = {
            event: any(inspect.iscoroutinefunction(h) for h in handlers)
            for event, handlers in self._handlers.items()
        }

    def load(self, loader: Any) -> None:
        self._call("load", loader)

    def configure(self, updated: set[str]) -> None:
        self._call("configure", updated)

    async def running(self) -> None:
        await self._call_async("running")

    async def done(self) -> None:
        await self._call_async("done")

    async def client_connected(self, client: Any) -> None:
        for handler in self._handlers["client_connected"]:
            result = handler(client)
            if inspect.isawaitable(result):
                await result

    def client_disconnected(self, client: Any) -> None:
        self._call("client_disconnected", client)

    def server_connect(self, data: Any) -> None:
        self._call("server_connect", data)

    def next_layer(self, nextlayer: Any) -> None:
        self._call("next_layer", nextlayer)

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        await self._flow("requestheaders", flow)

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        await self._flow("request", flow)

    @fail_closed
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        await self._flow("responseheaders", flow)

    @fail_closed
    async def response(self, flow: http.HTTPFlow) -> None:
        await self._flow("response", flow)

    async def error(self, flow: http.HTTPFlow) -> None:
        await self._flow("error", flow)

    async def _flow(self, event: str, flow: http.HTTPFlow) -> None:
        if self._async[event]:
            for handler in self._handlers[event]:
                result = handler(flow)
                if result is not None:
                    await result
        else:
            for handler in self._handlers[event]:
                handler(flow)

    def _call(self, event: str, *args: Any) -> None:
        for handler in self._handlers[event]:
            handler(*args)

    async def _call_async(self, event: str) -> None:
        for handler in self._handlers[event]:
            result = handler()
            if inspect.isawaitable(result):
                await result


def warren_addons(runtime: Runtime | None = None) -> list[object]:
    """What `addons/warren.py` and `warren gateway` load: the whole pack, as one addon."""
    return [Warren(features(runtime or Runtime()))]
