"""Raw TCP and UDP resources: a listener per resource on the node, the rules decided once per
connection, and the bytes relayed untouched to a target, through its site's tunnel if it has one.

Each resource is a mitmproxy `reverse:tcp://` or `reverse:udp://` mode on `listen`'s host and the
resource's port, added and removed as the policy changes. The mode's own destination is the
discard port on loopback, never used: `server_connect` points every connection at the target
chosen when it arrived, and refuses to connect one it knows nothing about. The connection's
bytes are relayed by an ignoring TCP/UDP layer (no flow, no copy kept, no TLS interception).
A target with `proxy_protocol` first gets the PROXY header (addons/proxyheader.py). With
`listen_proxy_protocol`, a connection from a trusted balancer is decided once its own PROXY
header has named the client (addons/proxyaccept.py), not on connect.

Fail closed per connection: an exception in any of these hooks kills the connection.
"""

import logging
from typing import NamedTuple

from mitmproxy import connection, ctx
from mitmproxy.proxy import layer, layers, server_hooks
from mitmproxy.proxy.context import Context

from addons.failclosed import fail_closed_connection, kill_client, kill_server
from addons.options import UNROUTED
from addons.proxyaccept import RawProxyHeaderLayer
from addons.proxyheader import ProxyHeaderTCPLayer, header_for
from addons.runtime import Runtime, RuntimeSlot
from core.balance import TargetKey, Upstreams, target_key
from core.clientip import peer_address
from core.connections import admit_connection, connection_facts
from core.ipsets import IPAddress
from core.policy.compiled import CompiledResource, Policy
from core.ratelimit.enforce import count_connection as connection_rate
from core.settings import Settings
from core.tunnels import forward_protocol

log = logging.getLogger("warren.gateway")


class Route(NamedTuple):
    resource: str
    key: TargetKey  # (site, scheme, host, port)
    address: tuple[str, int]
    connect_timeout: float  # the resource's timeouts.connect, in seconds
    upstreams: Upstreams  # whose count of connections in flight it is in
    header: bytes = b""  # the PROXY protocol header to write first, if the target asks for one


def _admission(runtime: Runtime, resource: CompiledResource, ip: IPAddress) -> str | None:
    """Why the rules refuse this connection, or None."""
    policy = runtime.policy
    country, asn = runtime.geo_facts(policy, ip)
    admission = admit_connection(policy, resource, connection_facts(ip, country, asn))
    if admission.allowed:
        return None
    log.info("%s %s from %s refused: %s", forward_protocol(resource.model), resource.name, ip,
             admission.reason)  # fmt: skip
    return admission.reason


async def _over_limit(runtime: Runtime, resource: CompiledResource, ip: IPAddress) -> str | None:
    if not resource.rate_limits:
        return None
    limited = await connection_rate(runtime.limiter, resource, ip)
    if limited.refused_by is None or limited.decision is None:
        return None
    wait, limit = limited.decision.retry_after(), limited.refused_by.key
    log.info("%s %s from %s refused: over %s (for %ds)", forward_protocol(resource.model),
             resource.name, ip, limit, wait)  # fmt: skip
    return f"over the connection-rate limit {limit}"


def _sends_header(runtime: Runtime, resource: CompiledResource, ip: IPAddress) -> bool:
    """A TCP connection from a trusted balancer, with `listen_proxy_protocol` on: it starts with
    a PROXY header, and is decided on the client that names (never guessed: proxy-protocol.txt
    §2). UDP carries no header: a datagram has no stream to start with one."""
    return (
        runtime.settings.listen_proxy_protocol
        and resource.model.protocol == "tcp"
        and runtime.policy.trust.sends_proxy_header(ip)
    )


def raw_mode(settings: Settings, protocol: str, port: int) -> str:
    host = settings.listen.host
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"reverse:{protocol}://{UNROUTED.removeprefix('http://')}@{listen}"


class RawResources:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        self._modes: dict[str, str] = {}  # mode spec -> resource name
        self._routes: dict[str, Route] = {}  # client connection id -> where it goes
        self._awaiting: dict[str, str] = {}  # client connection id -> resource, header first

    def running(self) -> None:
        if self.slot.runtime is not None:
            self._follow(self.slot.runtime)
        self.slot.on_swap(self._follow)

    def _follow(self, runtime: Runtime) -> None:
        def listen(policy: Policy) -> None:
            if self.slot.runtime is runtime:  # a runtime swapped out no longer decides
                self._listen(runtime.settings, policy)

        runtime.store.subscribe(listen)
        listen(runtime.policy)

    def _listen(self, settings: Settings, policy: Policy) -> None:
        wanted = {
            raw_mode(settings, resource.model.protocol, resource.model.port or 0): name
            for name, resource in policy.resources.items()
            if resource.model.protocol != "http"
        }
        if wanted.keys() == self._modes.keys():
            self._modes = wanted
            return
        others = [mode for mode in ctx.options.mode if mode not in self._modes]
        self._modes = wanted
        ctx.options.update(mode=[*others, *wanted])
        log.info("raw resources listening: %s", ", ".join(sorted(wanted)) or "none")

    @fail_closed_connection(kill_client)
    async def client_connected(self, client: connection.Client) -> None:
        name = self._modes.get(client.proxy_mode.full_spec)
        if name is None:
            return  # an HTTP connection: decided per request
        runtime = self.slot.runtime
        resource = runtime.policy.resources.get(name) if runtime is not None else None
        if runtime is None or resource is None:
            client.error = f"resource {name} is gone"
            return
        ip = peer_address(client.peername[0])
        if _sends_header(runtime, resource, ip):
            self._awaiting[client.id] = name  # decided on its header's client (client_known)
            return
        await self._decide(runtime, client, resource, ip)

    @fail_closed_connection(kill_client)
    async def client_known(self, client: connection.Client) -> None:
        """A trusted balancer's PROXY header named the client (addons.proxyaccept): decide now.
        Without a route the header's layer closes the connection."""
        name = self._awaiting.pop(client.id, None)
        runtime = self.slot.runtime
        if name is None or runtime is None:
            return
        resource = runtime.policy.resources.get(name)
        if resource is None:
            log.info("tcp %s is gone; connection closed", name)
            return
        await self._decide(runtime, client, resource, peer_address(client.peername[0]))

    async def _decide(
        self, runtime: Runtime, client: connection.Client, resource: CompiledResource, ip: IPAddress
    ) -> None:
        name = resource.name
        refused = _admission(runtime, resource, ip) or await _over_limit(runtime, resource, ip)
        if refused is not None:
            client.error = refused
            return
        protocol = forward_protocol(resource.model)
        target = runtime.upstreams.pick(resource, ip)
        address = runtime.sites.resolve(target, protocol) if target is not None else None
        if target is None or address is None:
            log.warning("%s %s from %s refused: no target is reachable", protocol, name, ip)
            client.error = "no target is reachable"
            return
        key = target_key(target)
        connect = resource.model.timeouts.connect.total_seconds()
        header = b""
        if target.proxy_protocol is not None and client.sockname:
            header = header_for(target.proxy_protocol, ip, client.peername, client.sockname)
        self._routes[client.id] = Route(name, key, address, connect, runtime.upstreams, header)
        runtime.upstreams.started(key)
        log.info("%s %s from %s -> %s:%d", protocol, name, ip, target.host, target.port)

    def route_of(self, client_id: str) -> Route | None:
        return self._routes.get(client_id)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        context = nextlayer.context
        if context.client.id in self._awaiting and self.slot.runtime is not None:
            timeout = self.slot.runtime.settings.http.head_timeout.total_seconds()
            nextlayer.layer = RawProxyHeaderLayer(context, self.relay, timeout)
            return
        relay = self.relay(context)
        if relay is not None:
            nextlayer.layer = relay

    def relay(self, context: Context) -> layer.Layer | None:
        """The layer that relays a decided connection (None: not decided, or refused)."""
        route = self._routes.get(context.client.id)
        if route is None:
            return None
        # Relay without a flow: nothing kept, nothing parsed, TLS passed through untouched.
        if context.client.transport_protocol == "udp":
            return layers.UDPLayer(context, ignore=True)
        if route.header:
            return ProxyHeaderTCPLayer(context, route.header)
        return layers.TCPLayer(context, ignore=True)

    @fail_closed_connection(kill_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        route = self._routes.get(data.client.id)
        if route is not None:
            data.server.address = route.address
        elif data.client.proxy_mode.full_spec in self._modes:
            data.server.error = "a raw connection without a decision"

    def client_disconnected(self, client: connection.Client) -> None:
        self._awaiting.pop(client.id, None)
        route = self._routes.pop(client.id, None)
        if route is not None:
            route.upstreams.finished(route.key)
