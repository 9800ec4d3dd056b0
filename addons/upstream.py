"""Where to: the resource's route for the path (core.policy.routes), a healthy target of it; the
request is pointed at it with clean headers and the route's rewritten path."""

import functools
import logging
from urllib.parse import unquote_plus

from mitmproxy import http

from addons import siteapi
from addons.destination import point_at
from addons.exchange import Exchange
from addons.headerindex import IndexedHeaders
from addons.layers import RELAY_RAW
from addons.relay import point_at_node, relay_route
from addons.respond import refuse
from addons.retry import connect_failed
from addons.signin import SignIn, request_host
from core import forwarding
from core.auth import cookies
from core.auth.identity import Identity
from core.auth.sessioncookies import REMEMBERED_HEADER_CHARACTERS
from core.balance import target_key
from core.cluster.records import NodeRecord
from core.headers import Field, is_websocket_upgrade, positions
from core.paths import split_target
from core.policy.model import Target
from core.policy.routes import CompiledRoute

log = logging.getLogger("warren.gateway")


class Upstream:
    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        runtime, resource = exchange.runtime, exchange.resource
        exchange.route = resource.routes.choose(exchange.match_path) if resource.routes else None
        if exchange.route is None and not resource.targets:
            refuse(flow, 404, reason=f"no route of {resource.name} serves {exchange.path[:100]}")
            return
        route = _route(exchange)
        if isinstance(route, str):
            refuse(flow, 503, reason=route)
            return
        target, where = route
        _rewrite_headers(flow, exchange, runtime.signin)
        if exchange.route is not None and exchange.route.rewrite is not None:
            _rewrite_path(flow.request, exchange.route)
        if isinstance(where, NodeRecord):
            point_at_node(flow, exchange, target, where)
        else:
            point_at(flow.request, target.scheme, where)
        exchange.target = target
        exchange.routed = True
        runtime.upstreams.started(target_key(target))

    def responseheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        response = flow.response
        if response is None or exchange.target is None:
            return  # only what an application answered; Warren's own answers set its cookies
        exchange.runtime.upstreams.answered(target_key(exchange.target))
        if response.status_code == 101 and not _websocket_accepted(flow, response):
            _refuse_switch(flow, response)
            return
        if response.status_code == 101 and exchange.resource.name == siteapi.NAME:
            flow.metadata[RELAY_RAW] = True  # the site's TCP/443 stream (sidecar.streamnode)
        if "set-cookie" not in response.headers:
            return
        if request_host(flow) == exchange.runtime.signin.portal_host:
            return
        _refuse_warren_cookies(response, flow)

    def connect_failed(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        connect_failed(flow, exchange)  # eject the target; perhaps another one (addons.retry)

    def response(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        _finished(exchange)

    def error(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        _finished(exchange)


def _route(exchange: Exchange) -> tuple[Target, tuple[str, int] | NodeRecord] | str:
    """A healthy target and where to connect for it, or why there is none. A target on a site
    is reached through the site's tunnel (core.sites); when no target can be reached from here,
    through another node that has the site online (addons.relay)."""
    runtime, resource = exchange.runtime, exchange.resource
    target = runtime.upstreams.pick(resource, exchange.client.ip, exchange.route)
    address = None if target is None else runtime.sites.resolve(target)
    if target is not None and address is not None:
        return target, address
    relay = relay_route(exchange, target)
    if relay is not None:
        return relay
    if target is None:
        return f"no healthy target for {resource.name}"
    return f"site {target.site} of {resource.name} is offline"


def _rewrite_path(request: http.Request, route: CompiledRoute) -> None:
    """The target gets the route's rewrite of the canonical path; the query passes byte for
    byte. Rules and sign-in decided on the client's path before this (docs/configuration.md)."""
    path, query = split_target(request.path)
    request.path = route.forwarded(path) + query


def _finished(exchange: Exchange) -> None:
    if exchange.target is not None and exchange.routed:
        exchange.routed = False  # count each request out once, whichever hook comes first
        exchange.runtime.upstreams.finished(target_key(exchange.target))


def _rewrite_headers(flow: http.HTTPFlow, exchange: Exchange, signin: SignIn) -> None:
    request = flow.request
    host = request.host_header or ""
    portal = exchange.host == signin.portal_host
    identity = exchange.identity
    extra: tuple[Field, ...] = ()
    if identity is not None:
        extra = signin.identity_headers(identity, exchange.host)
    fields = request.headers.fields
    request.headers = IndexedHeaders.of(
        forwarding.rewrite(
            _without_credentials(fields, portal, identity),
            client_ip=str(exchange.client.ip),
            scheme="https" if flow.client_conn.tls_established else "http",
            host=host,
            strip=exchange.policy.strip,
            websocket=is_websocket_upgrade(request.method, fields),
            extra=extra,
        )
    )
    if cookies.SHARE_PARAMETER in request.path:
        request.path = _without_share_token(request.path)


# Credentials Warren checked itself: the application gets the identity headers instead.
_CONSUMED = frozenset({"basic", "token"})


def _without_credentials(
    fields: tuple[Field, ...], portal: bool, identity: Identity | None
) -> list[Field]:
    """Warren's cookies (and basic credentials or app tokens Warren consumed) never reach an
    application."""
    kept = list(fields)
    consumed = identity is not None and identity.method in _CONSUMED
    dropped = positions(fields, b"authorization") if consumed else []
    for index in positions(fields, b"cookie"):  # HTTP/2 may split one in several (RFC 9113 §8.2.3)
        name, value = fields[index]
        if b"warren_" not in value:
            continue
        if portal:  # the portal reads its own cookies, never the resources'
            value = cookies.without_warren_cookies(
                value.decode("latin-1"), keep=_portal_cookie_names(value)
            ).encode("latin-1")
        else:
            value = _without_warren_cookies(value)
        if value:
            kept[index] = (name, value)
        else:
            dropped.append(index)
    for index in sorted(dropped, reverse=True):
        del kept[index]
    return kept


def _without_warren_cookies(value: bytes) -> bytes:
    # A browser sends the same Cookie header with every request: what remains of it is
    # remembered, for headers short enough that remembering costs little memory.
    if len(value) > REMEMBERED_HEADER_CHARACTERS:
        return _stripped(value)
    return _remembered_stripped(value)


def _stripped(value: bytes) -> bytes:
    return cookies.without_warren_cookies(value.decode("latin-1")).encode("latin-1")


_remembered_stripped = functools.lru_cache(maxsize=4096)(_stripped)


def _portal_cookie_names(value: bytes) -> list[str]:
    names = [part.strip().partition("=")[0] for part in value.decode("latin-1").split(";")]
    return [
        name
        for name in names
        if name.removeprefix("__Host-").removeprefix("__Secure-") in cookies.PORTAL_OWN
    ]


def _without_share_token(target: str) -> str:
    # Only the token's own pieces go; the rest of the query reaches the backend byte for byte.
    path, query = split_target(target)
    kept = [
        part
        for part in query.removeprefix("?").split("&")
        if unquote_plus(part.partition("=")[0]) != cookies.SHARE_PARAMETER
    ]
    return path + (f"?{'&'.join(kept)}" if any(kept) else "")


def _refuse_warren_cookies(response: http.Response, flow: http.HTTPFlow) -> None:
    """An application may not set a cookie named like Warren's (session fixation)."""
    values = response.headers.get_all("set-cookie")
    if not any("warren_" in value for value in values):
        return
    kept = [v for v in values if not cookies.is_warren_cookie(v.partition("=")[0].strip())]
    if len(kept) != len(values):
        log.warning(
            "%s answered %s with a Warren cookie; removed",
            flow.request.host_header,
            flow.request.path[:100],
        )
        response.headers.set_all("set-cookie", kept)


def _websocket_accepted(flow: http.HTTPFlow, response: http.Response) -> bool:
    # The request as forwarded carries `Upgrade: websocket` only when Warren let the upgrade on.
    asked: bool = flow.request.headers.get("upgrade", "").lower() == "websocket"
    answered: bool = response.headers.get("upgrade", "").strip().lower() == "websocket"
    return asked and answered


def _refuse_switch(flow: http.HTTPFlow, response: http.Response) -> None:
    """A 101 for anything but the WebSocket upgrade Warren forwarded would turn the connection
    into a raw tunnel past every check; the client gets 502 and the connection closes."""
    upgrade = response.headers.get("upgrade", "")[:40]
    refuse(
        flow,
        502,
        reason=f"the application switched protocols ({upgrade!r}) without a WebSocket upgrade",
        headers={"connection": "close"},
    )
