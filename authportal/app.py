"""`warren portal`: the aiohttp application and its server."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from authportal.state import PORTAL, Portal
from authportal.views import routes
from core.settings import Settings, load_settings
from core.watch import watch_file

log = logging.getLogger("warren.portal")

_HEADERS = {
    # Warren's pages need no script and are never framed; the form's redirect goes on to the
    # resource's host, so form-action stays open.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer, browsers send `Origin: null` on our forms.
    "Referrer-Policy": "same-origin",
}

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exception:
        response = exception
    response.headers.update(_HEADERS)
    response.headers["Server"] = "Warren"
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException) and response.status >= 300:
        raise response
    return response


def make_app(portal: Portal) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[PORTAL] = portal
    app.add_routes(routes)
    app.cleanup_ctx.append(_background)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    portal = app[PORTAL]
    interval = portal.settings.reload_poll.total_seconds()
    watcher = asyncio.create_task(
        watch_file(portal.policy.path, interval, lambda: portal.policy.reload_async(force=False))
    )
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await portal.kv.close()


async def _serve(settings: Settings) -> int:
    portal = Portal.from_settings(settings)
    runner = web.AppRunner(make_app(portal), access_log=None)
    await runner.setup()
    listen = settings.portal.listen
    site = web.TCPSite(runner, listen.host, listen.port)
    await site.start()
    log.info("Warren portal for %s listening on %s", portal.origin, listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def serve(config: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s %(message)s")
    return asyncio.run(_serve(load_settings(config)))
