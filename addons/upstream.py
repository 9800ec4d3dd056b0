"""Where to: a healthy target of the resource; the request is pointed at it with clean headers."""

import logging
from urllib.parse import unquote_plus

from mitmproxy import http

from addons.exchange import Exchange, exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from addons.runtime import Runtime
from addons.signin import SignIn, request_host
from core import forwarding
from core.auth import cookies
from core.auth.identity import Identity
from core.balance import target_key
from core.hosts import normalise_host
from core.paths import split_target
from core.policy.model import Target

log = logging.getLogger("warren.gateway")


class Upstream:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or exchange.verdict is None or flow.response is not None:
            return
        assert exchange.resource is not None
        target = self.runtime.upstreams.pick(exchange.resource, exchange.client.ip)
        if target is None:
            refuse(flow, 503, reason=f"no healthy target for {exchange.resource.name}")
            return
        # A target on a site is reached through the site's tunnel (core.tunnels).
        address = self.runtime.sites.resolve(target)
        if address is None:
            refuse(flow, 503, reason=f"site {target.site} of {exchange.resource.name} is offline")
            return
        _rewrite_headers(flow, exchange, self.runtime.signin)
        _point_at(flow.request, target, address)
        exchange.target = target
        exchange.routed = True
        self.runtime.upstreams.started(target_key(target))

    @fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or "set-cookie" not in response.headers:
            return
        exchange = exchange_of(flow)
        if exchange is None or exchange.target is None:
            return  # only what an application answered; Warren's own answers set its cookies
        signin = self.runtime.signin
        if signin is not None and request_host(flow) == signin.portal_host:
            return
        _refuse_warren_cookies(response, flow)

    @fail_closed
    def response(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    def _finished(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is not None and exchange.target is not None and exchange.routed:
            exchange.routed = False  # count each request out once, whichever hook comes first
            self.runtime.upstreams.finished(target_key(exchange.target))


def _rewrite_headers(flow: http.HTTPFlow, exchange: Exchange, signin: SignIn | None) -> None:
    request = flow.request
    host = request.host_header or ""
    portal = signin is not None and normalise_host(host) == signin.portal_host
    identity = exchange.identity
    extra: tuple[forwarding.Field, ...] = ()
    if identity is not None and signin is not None:
        extra = signin.identity_headers(identity, normalise_host(host))
    request.headers.fields = forwarding.rewrite(
        _without_credentials(request.headers.fields, portal, identity),
        client_ip=str(exchange.client.ip),
        scheme="https" if flow.client_conn.tls_established else "http",
        host=host,
        extra=extra,
    )
    if cookies.SHARE_PARAMETER in request.path:
        request.path = _without_share_token(request.path)


def _without_credentials(
    fields: tuple[forwarding.Field, ...], portal: bool, identity: Identity | None
) -> list[forwarding.Field]:
    """Warren's cookies (and basic credentials Warren consumed) never reach an application."""
    kept = []
    for name, value in fields:
        lowered = name.lower()
        if lowered == b"cookie" and b"warren_" in value:
            if portal:  # the portal reads its own cookies, never the resources'
                value = cookies.without_warren_cookies(
                    value.decode("latin-1"), keep=_portal_cookie_names(value)
                ).encode("latin-1")
            else:
                value = cookies.without_warren_cookies(value.decode("latin-1")).encode("latin-1")
            if not value:
                continue
        elif lowered == b"authorization" and identity is not None and identity.method == "basic":
            continue
        kept.append((name, value))
    return kept


def _portal_cookie_names(value: bytes) -> list[str]:
    names = [part.strip().partition("=")[0] for part in value.decode("latin-1").split(";")]
    return [
        name
        for name in names
        if name.removeprefix("__Host-").removeprefix("__Secure-")
        in (cookies.PORTAL, cookies.PENDING, cookies.CSRF)
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


def _point_at(request: http.Request, target: Target, address: tuple[str, int]) -> None:
    # Setting the destination rewrites Host/:authority; the backend must see the client's.
    host_header = request.host_header
    request.scheme = target.scheme
    request.host, request.port = address
    request.host_header = host_header
