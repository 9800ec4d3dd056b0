"""The portal's answer when the shared storage is down: Warren's 503 page, as the gateway answers
it (`core.pages`: HTML for a browser, JSON for anyone else), with Retry-After, one log line and
no traceback. Every step of a sign-in writes to storage (the sign-in record, the one-time code,
the failed-attempt counters, TOTP replay), so none can be done halfway and called a success."""

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from core import pages, storagefailure

log = logging.getLogger("warren.portal")

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def storage_down(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except storagefailure.FAILURES as error:
        reference = secrets.token_hex(6)
        log.warning(
            "%s %s -> 503 storage unavailable (%s) [ref %s]",
            request.method,
            request.path[:200],
            storagefailure.reason(error),
            reference,
        )
        page = pages.render(
            503,
            accept=request.headers.get("Accept"),
            detail=storagefailure.DETAIL,
            reference=reference,
        )
        return web.Response(
            status=503,
            body=page.body,
            headers={
                "Content-Type": page.content_type,
                "Retry-After": str(storagefailure.RETRY_AFTER_SECONDS),
            },
        )
