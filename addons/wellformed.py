"""The first request step: a request whose head can be read two ways is refused before anything
is decided on it (core.headers, core.hosts).

- 400: a method or header name that is not a token, a control character in a value (bare CR,
  NUL, obs-fold; RFC 9110 §5.5, RFC 9112 §5.2), no Host on HTTP/1.1, two Host fields or one that
  is not a host and port (RFC 9112 §3.2), a Host that differs from HTTP/2's :authority
  (RFC 9113 §8.3.1), a Connection field nominating Content-Length, Transfer-Encoding or Host.
- 431: more header fields, or more bytes of them, than warren.yaml's `http` allows (RFC 6585 §5;
  an HTTP/1 head that never ends is cut at the same size by `addons.layers`).
"""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import refuse
from core.headers import connection_problem, field_problem, head_size, is_token
from core.hosts import normalise_host, valid_authority

_UNREADABLE = "Warren could not read this request one way only, so it refused it."


class WellFormed:
    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        request = flow.request
        fields = request.headers.fields
        limits = exchange.runtime.settings.http
        if len(fields) > limits.max_headers:
            refuse(flow, 431, reason=f"{len(fields)} header fields")
            return
        size = head_size(fields)
        if size > limits.max_head_size:
            refuse(flow, 431, reason=f"{size} bytes of header fields")
            return
        problem = (
            None if is_token(request.data.method) else "the method is not a token"
        ) or field_problem(fields)
        problem = problem or _host_problem(request) or connection_problem(fields)
        if problem is not None:
            refuse(flow, 400, detail=_UNREADABLE, reason=problem)


def _host_problem(request: http.Request) -> str | None:
    hosts = request.headers.get_all("host")
    if len(hosts) > 1:
        return "two Host header fields"
    if request.is_http2 or request.is_http3:
        authority = request.authority
        if authority and not valid_authority(authority):
            return f"the :authority {authority[:80]!r} is not a host"
        if hosts and authority and normalise_host(hosts[0]) != normalise_host(authority):
            return "Host differs from :authority"
        if not authority and not hosts:
            return "no :authority or Host"
    elif not hosts:
        return "no Host header" if request.http_version == "HTTP/1.1" else None
    host = hosts[0] if hosts else request.authority
    if host and not valid_authority(host):
        return f"the Host {host[:80]!r} is not a host and port"
    return None
