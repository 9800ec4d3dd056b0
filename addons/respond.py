"""Answering a request from the gateway itself, so nothing reaches a backend."""

import logging
import secrets

from mitmproxy import http

from core import pages

log = logging.getLogger("warren.gateway")

# Warren's pages need no script; the sign-out form may lead on to the portal, so no form-action.
CSP = b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


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
    # A body mitmproxy decided to stream would otherwise be sent upstream next to our answer.
    flow.request.stream = False
    flow.response = response
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(
        level,
        "%s %s%s -> %d %s [ref %s]",
        flow.request.method,
        flow.request.host_header or "-",
        flow.request.path[:200],
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
    flow.request.stream = False
    flow.response = http.Response.make(status, b"", http.Headers(fields))
    log.info(
        "%s %s%s -> %d %s",
        flow.request.method,
        flow.request.host_header or "-",
        flow.request.path[:200],
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
    flow.request.stream = False
    flow.response = http.Response.make(status, body.encode(), http.Headers(fields))
