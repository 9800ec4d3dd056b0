"""Requests on warren.yaml's `http_listen` (plain HTTP, port 80): ACME's HTTP-01 challenge path
is answered from the node's shared state (core.acme.tokens), and everything else is sent to the
same host and path over https with 308 (RFC 9110 §15.4.9: the method and body are kept). No
policy decision is made and nothing is forwarded: plain HTTP carries no request to an application.

A step of the request path after WellFormed, so a head that reads two ways is still refused.
"""

import logging
import re
from urllib.parse import urlsplit

from mitmproxy import http

from addons.exchange import Exchange
from addons.options import plain_http_mode
from addons.respond import redirect, refuse
from core.acme.tokens import key_authorization
from core.hosts import normalise_host

log = logging.getLogger("warren.gateway")

# RFC 8555 §8.3: the CA asks for http://<name>/.well-known/acme-challenge/<token>.
_CHALLENGE = re.compile(r"/\.well-known/acme-challenge/(?P<token>[^/]+)")


class PlainHttp:
    async def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        settings = exchange.runtime.settings
        mode = plain_http_mode(settings)
        if mode is None or flow.client_conn.proxy_mode.full_spec != mode:
            return  # not the plain-HTTP listener: the rest of the path decides
        request = flow.request
        challenge = _CHALLENGE.fullmatch(urlsplit(request.path).path)
        if challenge is not None and request.method in ("GET", "HEAD"):
            await _answer_challenge(flow, exchange, challenge["token"])
            return
        host = request.host_header
        if not host:
            refuse(flow, 400, detail="A request without Host cannot be sent to https.",
                   reason="plain HTTP without Host")  # fmt: skip
            return
        port = settings.listen.port
        authority = normalise_host(host) + ("" if port == 443 else f":{port}")
        redirect(flow, f"https://{authority}{request.path}", status=308)


async def _answer_challenge(flow: http.HTTPFlow, exchange: Exchange, token: str) -> None:
    answer = await key_authorization(exchange.runtime.signin.kv, token)
    if answer is None:
        refuse(flow, 404, reason="no ACME challenge with this token")
        return
    flow.response = http.Response.make(
        200,
        answer.encode(),
        {"content-type": "application/octet-stream", "cache-control": "no-store"},
    )
    log.info("%s %s/.well-known/acme-challenge/%s -> 200 (ACME http-01)",
             flow.request.method, flow.request.host_header or "-", token[:16])  # fmt: skip
