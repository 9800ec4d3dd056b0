"""The Warren addon pack: what mitmproxy sees as one addon.

The request path is `request_steps`, in order: each step reads what the ones before it decided,
and the first that answers ends the path (addons.pipeline). The other parts are addons of their
own, for what happens beside requests: building the runtime, the HTTP layers, raw TCP/UDP
resources, deadlines on connections to targets.

mitmproxy hands every event to every addon in its chain, at a few microseconds each, whether the
addon handles the event or not; `Warren` calls, for each event, only the parts that handle it.
"""

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import http

from addons.accesslog import AccessLog
from addons.acmeloop import AcmeLoop
from addons.auth import Auth
from addons.certificates import Certificates
from addons.clientcert import ClientCertificateRequest
from addons.clientip import ClientIp
from addons.cluster import Cluster
from addons.config import Config
from addons.deadlines import Deadlines
from addons.identify import Identify
from addons.layers import Layers
from addons.metrics import Metrics
from addons.pipeline import Pipeline
from addons.plainhttp import PlainHttp
from addons.probes import Probes
from addons.proxyaccept import ProxyProtocolAccept
from addons.proxyheader import ProxyHeaderConnections, ProxyHeaderStep
from addons.ratelimit import RateLimits
from addons.raw import RawResources
from addons.relay import Relayed, RelayTls
from addons.reserved import Reserved
from addons.routing import Routing
from addons.rules import Rules
from addons.runtime import RuntimeSlot
from addons.sync import Sync
from addons.upstream import Upstream
from addons.wellformed import WellFormed

_LIFECYCLE = ("load", "configure", "running", "done")
# Per connection, not per request: raw TCP/UDP resources decide and route here.
_CONNECTION = (
    "client_connected",
    "client_disconnected",
    "client_known",  # a raw connection's PROXY header named its client (addons.raw)
    "server_connect",
    "next_layer",
    "tls_clienthello",
    "tls_start_client",
    "tls_start_server",
)


def request_steps(deadlines: Deadlines) -> list[object]:
    """The request path of DESIGN.md, in its order."""
    return [
        WellFormed(),  # a head that can be read two ways is refused before any decision
        Probes(),  # /.warren/healthz and /.warren/readyz on any host, for DNS and load balancers
        PlainHttp(),  # on http_listen: ACME's HTTP-01 answers, a 308 to https for the rest
        ClientIp(),  # who is asking: the peer, or what a trusted proxy forwarded
        Routing(),  # the canonical path, then the resource by Host (or the sites' API)
        Relayed(deadlines),  # another node decided it: into this node's tunnel, nothing more
        Reserved(),  # /.warren/callback and /.warren/logout, before the rules
        Rules(),  # global, then the resource's; the first that matches decides
        Identify(),  # who signed in, before rate limits keyed on the user
        RateLimits(),
        Auth(),  # sign-in required: to the portal, 401, or 403 for someone not listed
        Upstream(),  # a target; the headers the application receives
        ProxyHeaderStep(),  # the PROXY header a new connection to that target starts with
        deadlines,  # how long the target may take to connect and to answer
    ]


type Steps = Callable[[Deadlines], list[object]]


def parts(slot: RuntimeSlot, steps: Steps = request_steps) -> tuple[list[object], Pipeline]:
    """The addons beside the request path, and the pipeline that is the request path."""
    raw = RawResources(slot)
    deadlines = Deadlines(raw)
    acme = AcmeLoop(slot)
    sync = Sync(slot)
    metrics = Metrics(slot)
    access = AccessLog(slot)  # the access log; its `refusals` answer the control socket
    return [
        acme,  # certificates from ACME; before Config, so it stops before its runtime closes
        sync,  # pushed policy and users into this node's files (shared storage only)
        Cluster(slot, refusals=sync.refusal),  # this node's heartbeat and published keys
        Config(
            slot,
            on_site_offline=deadlines.cut_site,
            status=[acme.status],
            refusals=access.recent_refusals,
        ),  # the runtime
        Certificates(slot),  # what TLS serves, by SNI
        ClientCertificateRequest(slot),  # mutual TLS on the hosts of resources with client_ca
        ProxyProtocolAccept(slot),  # a trusted balancer's PROXY header, before Layers looks
        ProxyHeaderConnections(),  # the PROXY header first on connections to http targets
        Layers(slot),  # mitmproxy's HTTP layers with head limits and Warren's error pages
        RelayTls(slot),  # connections to other nodes trust node.ca_file
        raw,
        deadlines,  # (connection hooks; its request step is in the pipeline)
        metrics,  # its listener; as the last step it counts each request once it is answered
        access,  # after Config; as the very last step, a line per request once it is final
    ], Pipeline(slot, [*steps(deadlines), metrics, access])


class Warren:
    """Lifecycle and connection events to every part that handles them; flow events to the
    pipeline alone."""

    def __init__(self, parts: Iterable[object], pipeline: Pipeline) -> None:
        self.parts = [*parts, pipeline]
        self.pipeline = pipeline
        self._handlers: dict[str, list[Callable[..., Any]]] = {
            event: [getattr(p, event) for p in self.parts if callable(getattr(p, event, None))]
            for event in (*_LIFECYCLE, *_CONNECTION)
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
        await self._call_async("client_connected", client)

    def client_disconnected(self, client: Any) -> None:
        self._call("client_disconnected", client)

    def server_connect(self, data: Any) -> None:
        self._call("server_connect", data)

    def next_layer(self, nextlayer: Any) -> None:
        self._call("next_layer", nextlayer)

    def tls_clienthello(self, data: Any) -> None:
        self._call("tls_clienthello", data)

    def tls_start_client(self, data: Any) -> None:
        self._call("tls_start_client", data)

    def tls_start_server(self, data: Any) -> None:
        self._call("tls_start_server", data)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.requestheaders(flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.request(flow)

    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.responseheaders(flow)

    async def response(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.response(flow)

    async def warren_connect_failed(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.connect_failed(flow)  # addons.layers.ConnectFailedHook

    async def warren_raw_client_known(self, client: Any) -> None:
        await self._call_async("client_known", client)  # addons.proxyaccept.ClientKnownHook

    async def error(self, flow: http.HTTPFlow) -> None:
        await self.pipeline.error(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """mitmproxy keeps every message of a WebSocket in flow.websocket.messages (for its
        UI); Warren relays them and reads none. Kept, a long-lived WebSocket (an application's,
        or a site's TCP/443 tunnel stream, docs/tunnels.md) would grow the gateway without
        bound. The layer relays its own reference to the message after this hook."""
        if flow.websocket is not None:
            flow.websocket.messages.clear()

    def _call(self, event: str, *args: Any) -> None:
        for handler in self._handlers[event]:
            handler(*args)

    async def _call_async(self, event: str, *args: Any) -> None:
        for handler in self._handlers[event]:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result


def warren_addons(slot: RuntimeSlot | None = None) -> list[object]:
    """What `addons/warren.py` and `warren gateway` load: the whole pack, as one addon."""
    return [Warren(*parts(slot or RuntimeSlot()))]
