"""Answering a request from the gateway itself, so nothing reaches a backend."""

import logging
import secrets

from mitmproxy import http

from addons.outcome import Refusal, record_refusal
from core import pages
from core.paths import split_target

log = logging.getLogger("warren.gateway")

# Warren's pages need no script; the sign-out form may lead on to the portal, so no form-action.
CSP = b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _answered(flow: http.HTTPFlow) -> None:
    # A body mitmproxy decided to stream would otherwise be sent upstream next to our answer;
    # and a client waiting for `100 Continue` gets the final answer instead (RFC 9110 §10.1.1).
    flow.request.stream = False
    flow.request.headers.pop("expect", None)


def without_content_for_head(flow: http.HTTPFlow) -> None:
    """A response to HEAD carries no content (RFC 9110 §9.3.2, RFC 9112 §6.3): mitmproxy sends
    whatever body an answer holds, and a client reading the next response on the connection
    would take those bytes for its status line. The headers stay as a GET's would, so
    Content-Length still says the GET's size (RFC 9110 §8.6)."""
    response = flow.response
    if flow.request.method.upper() == "HEAD" and response is not None and response.raw_content:
        response.raw_content = b""


def refuse(
    flow: http.HTTPFlow,
    status: int,
    *,
    detail: str | None = None,
    reason: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    reference = secrets.token_hex(6)
    page = pages.render(
        status, accept=flow.request.headers.get("accept"), detail=detail, reference=reference
    )
    response = http.Response.make(
        page.status,
        page.body,
        {"content-type": page.content_type, "cache-control": "no-store", **(headers or {})},
    )
    _answered(flow)
    flow.response = response
    record_refusal(flow, Refusal(status, reason, reference))
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(
        level,
        "%s %s%s -> %d %s [ref %s]",
        flow.request.method,
        flow.request.host_header or "-",
        split_target(flow.request.path)[0][:200],  # never the query: it can carry a secret
        status,
        reason,
        reference,
    )


def redirect(
    flow: http.HTTPFlow, location: str, *, cookies: list[str] | None = None, status: int = 302
) -> None:
    """Send the browser elsewhere (sign-in, back from a callback), setting Warren's cookies."""
    fields = [
        (b"location", location.encode()),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        *((b"set-cookie", cookie.encode()) for cookie in cookies or ()),
    ]
    _answered(flow)
    flow.response = http.Response.make(status, b"", http.Headers(fields))
    log.info(
        "%s %s%s -> %d %s",
        flow.request.method,
        flow.request.host_header or "-",
        split_target(flow.request.path)[0][:200],
        status,
        location.partition("?")[0][:200],
    )


def answer_page(
    flow: http.HTTPFlow, status: int, body: str, *, cookies: list[str] | None = None
) -> None:
    """A page of Warren's own (the sign-out page), never an application's."""
    fields = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", CSP),
        *((b"set-cookie", cookie.encode()) for cookie in cookies or ()),
    ]
    _answered(flow)
    flow.response = http.Response.make(status, body.encode(), http.Headers(fields))
