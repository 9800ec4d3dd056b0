"""Answering a request from the gateway itself, so nothing reaches a backend."""

import logging
import secrets

from mitmproxy import http

from core import pages

log = logging.getLogger("warren.gateway")


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
