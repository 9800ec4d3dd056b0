"""Headers on the way to the backend: what only Warren may say is never taken from the client.

Every name is compared as a CGI name (core.headers), so `Remote_User` is `Remote-User`.
"""

import functools
from collections.abc import Iterable

from core.headers import HOP_BY_HOP, Field, HeaderNames, cgi_name, connection_options, nominated

# Any header a backend might read as a statement from the proxy about the client or the request.
_OWNED = frozenset({
    b"forwarded", b"x-real-ip", b"x-client-ip", b"true-client-ip", b"cf-connecting-ip",
    b"x-cluster-client-ip", b"client-ip", b"x-rewrite-url", b"remote-user", b"remote-email",
    b"remote-groups", b"remote-name", b"x-remote-user", b"x-user", b"x-email",
    b"warren-relay",  # core.cluster.relay: between nodes only
})  # fmt: skip
_OWNED_PREFIXES = (b"x-forwarded-", b"x-original-", b"x-warren-", b"x-auth-request-", b"remote-")

ASSERTION_HEADER = b"x-warren-assertion"

# What other products' applications trust as "the proxy signed this person in": stripped by
# default (policy.yaml's `strip_headers` replaces the list), because self-hosters put exactly
# these applications behind Warren.
DEFAULT_STRIP = (
    "X-Webauth-*",  # Grafana's auth proxy (X-WEBAUTH-USER), also Gitea and others
    "X-Authentik-*",
    "X-Authelia-*",
    "Cf-Access-*",  # Cloudflare Access: Cf-Access-Authenticated-User-Email, -Jwt-Assertion
    "Tailscale-User-*",  # tailscale serve: Tailscale-User-Login, -Name, -Profile-Pic
    "Tailscale-Headers-Info",
    "X-Pomerium-*",
    "X-Goog-Authenticated-User-*",  # Google IAP
    "X-Goog-Iap-Jwt-Assertion",
    "X-Amzn-Oidc-*",  # AWS ALB
    "X-Ms-Client-Principal*",  # Azure App Service authentication
    "Oidc-Claim-*",  # mod_auth_openidc
    "X-Remote-*",
    "X-Proxy-User",
    # A client certificate as a TLS-terminating proxy passes it on (RFC 9440, nginx, Traefik):
    # only Warren checks certificates, and a client must not hand one in as a header.
    "Client-Cert",
    "Client-Cert-Chain",
    "Ssl-Client-*",
    "X-Ssl-Client-*",
    "X-Client-Cert*",
    "X-Forwarded-Tls-Client-Cert*",
)


_OWNED_NAMES = HeaderNames.of(_OWNED, _OWNED_PREFIXES)
_NEVER_FORWARDED = _OWNED_NAMES | HeaderNames.of(HOP_BY_HOP, ())


def is_owned(name: bytes) -> bool:
    return cgi_name(name) in _OWNED_NAMES


@functools.lru_cache(maxsize=64)  # one per policy's strip_headers: made once, not per request
def _dropped(strip: HeaderNames) -> HeaderNames:
    return _NEVER_FORWARDED | strip


def _forwardable(fields: Iterable[Field], strip: HeaderNames) -> list[Field]:
    fields = tuple(fields)
    nominations = nominated(fields)
    kept = _dropped(strip).kept(fields, also=nominations)
    # The client's close (or HTTP/1.0 keep-alive) stays: it is about its own connection, and it
    # is what decides whether that connection stays open after the answer (RFC 9112 §9.3, §9.6).
    options = connection_options(nominations)
    if options is not None:
        kept.append((b"Connection", options))
    return kept


def rewrite(
    fields: Iterable[Field],
    *,
    client_ip: str,
    scheme: str,
    host: str,
    strip: HeaderNames,
    websocket: bool = False,
    extra: Iterable[Field] = (),
) -> tuple[Field, ...]:
    """The request's fields as the backend gets them: the client's, without hop-by-hop, owned
    and stripped ones, then Warren's own. `websocket`: the one upgrade Warren carries on."""
    kept = _forwardable(fields, strip)
    if websocket:  # RFC 6455 §4.1: the handshake's Connection is `Upgrade`, whatever else it said
        kept = [(n, v) for n, v in kept if n != b"Connection"]
        kept += [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    kept += [
        (b"X-Forwarded-For", client_ip.encode()),
        (b"X-Real-IP", client_ip.encode()),
        (b"X-Forwarded-Proto", scheme.encode()),
        (
            b"X-Forwarded-Host",
            host.encode("idna", "replace") if not host.isascii() else host.encode(),
        ),
    ]
    kept += extra
    return tuple(kept)
