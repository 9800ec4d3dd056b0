"""Raw TCP and UDP resources: a listener per resource on the node, the rules decided once per
connection, and the bytes relayed untouched to a target, through its site's tunnel if it has one.

Each resource is a mitmproxy `reverse:tcp://` or `reverse:udp://` mode on `listen`'s host and the
resource's port, added and removed as the policy changes. The mode's own destination is the
discard port on loopback, never used: `server_connect` points every connection at the target
chosen when it arrived, and refuses to connect one it knows nothing about. The connection's
bytes are relayed by an ignoring TCP/UDP layer (no flow, no copy kept, no TLS interception).

Fail closed per connection: an exception in any of these hooks kills the connection.
"""

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from mitmproxy import connection, ctx
from mitmproxy.proxy import layer, layers, server_hooks

from addons.failclosed import guard
from addons.options import UNROUTED
from addons.runtime import Runtime
from core.balance import TargetKey, target_key
from core.clientip import peer_address
from core.connections import admit_connection, connection_facts
from core.policy.compiled import Policy
from core.ratelimit.enforce import admit_connection as connection_rate
from core.settings import Settings
from core.tunnels import forward_protocol

log = logging.getLogger("warren.gateway")

HOOKS: list[str] = []  # every guarded connection hook, for the fault tests


class Route(NamedTuple):
    resource: str
    key: TargetKey
    address: tuple[str, int]


def raw_mode(settings: Settings, protocol: str, port: int) -> str:
    host = settings.listen.host
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"reverse:{protocol}://{UNROUTED.removeprefix('http://')}@{listen}"


def _guarded(kill: Callable[[Any, str], None]) -> Callable[[Any], Any]:
    """For connection hooks: an exception, injected or real, closes the connection."""

    def wrap(hook: Callable[[Any, Any], Any]) -> Any:
        name = f"raw.{hook.__name__}"

        def fail(data: Any, error: Exception) -> None:
            log.error("%s failed: %r; closing the connection", name, error, exc_info=error)
            kill(data, f"internal error in {name}")

        return guard(hook, name, fail, HOOKS)

    return wrap


def _kill_client(client: connection.Client, reason: str) -> None:
    client.error = reason


def _kill_server(data: server_hooks.ServerConnectionHookData, reason: str) -> None:
    data.server.error = reason


class RawResources:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._modes: dict[str, str] = {}  # mode spec -> resource name
        self._routes: dict[str, Route] = {}  # client connection id -> where it goes

    def running(self) -> None:
        store = self.runtime.store
        if store is None:
            return
        self._listen(store.current)
        store.subscribe(self._listen)

    def _listen(self, policy: Policy) -> None:
        settings = self.runtime.settings
        assert settings is not None
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

    @_guarded(_kill_client)
    async def client_connected(self, client: connection.Client) -> None:
        name = self._modes.get(client.proxy_mode.full_spec)
        if name is None:
            return  # an HTTP connection: decided per request
        policy = self.runtime.policy
        resource = policy.resources.get(name) if policy is not None else None
        if policy is None or resource is None:
            client.error = f"resource {name} is gone"
            return
        ip = peer_address(client.peername[0])
        country, asn = self.runtime.place(policy, ip)
        admission = admit_connection(policy, resource, connection_facts(ip, country, asn))
        protocol = forward_protocol(resource.model)
        if not admission.allowed:
            log.info("%s %s from %s refused: %s", protocol, name, ip, admission.reason)
            client.error = admission.reason
            return
        if resource.rate_limits:
            limiter = self.runtime.rate_limiter
            if limiter is None:
                raise RuntimeError("the policy has rate limits but no limiter was configured")
            limited = await connection_rate(limiter, resource, ip)
            if limited.refused_by is not None:
                assert limited.decision is not None
                wait = limited.decision.retry_after()
                limit = limited.refused_by.key
                log.info(
                    "%s %s from %s refused: over %s (for %ds)", protocol, name, ip, limit, wait
                )
                client.error = f"over the connection-rate limit {limit}"
                return
        target = self.runtime.upstreams.pick(resource, ip)
        address = self.runtime.sites.resolve(target, protocol) if target is not None else None
        if target is None or address is None:
            log.warning("%s %s from %s refused: no target is reachable", protocol, name, ip)
            client.error = "no target is reachable"
            return
        key = target_key(target)
        self._routes[client.id] = Route(name, key, address)
        self.runtime.upstreams.started(key)
        log.info("%s %s from %s -> %s:%d", protocol, name, ip, target.host, target.port)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        client = nextlayer.context.client
        if client.id not in self._routes:
            return
        # Relay without a flow: nothing kept, nothing parsed, TLS passed through untouched.
        if client.transport_protocol == "udp":
            nextlayer.layer = layers.UDPLayer(nextlayer.context, ignore=True)
        else:
            nextlayer.layer = layers.TCPLayer(nextlayer.context, ignore=True)

    @_guarded(_kill_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        route = self._routes.get(data.client.id)
        if route is not None:
            data.server.address = route.address
        elif data.client.proxy_mode.full_spec in self._modes:
            data.server.error = "a raw connection without a decision"

    def client_disconnected(self, client: connection.Client) -> None:
        route = self._routes.pop(client.id, None)
        if route is not None:
            self.runtime.upstreams.finished(route.key)
