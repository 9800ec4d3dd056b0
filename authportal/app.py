"""`warren portal`: the aiohttp application and its server."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

import authportal.console.mount as console
from authportal import emailcode, metrics, oidc, passkeys
from authportal.console.access import is_console
from authportal.errors import storage_down
from authportal.state import PORTAL, Portal
from authportal.views import routes
from core import control
from core.logs import setup_from_config
from core.notify import notify_ready
from core.reloading import Reloading
from core.settings import Settings

log = logging.getLogger("warren.portal")
STATIC = Path(__file__).parent / "static"

# Warren's pages are never framed; the form's redirect goes on to the resource's host, so
# form-action stays open. They work without script: only the passkey buttons need the portal's
# own, from /static/, and the admin console (no passkeys there) is allowed none.
_NO_SCRIPT = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
)
_OWN_SCRIPT = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
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
    policy = _NO_SCRIPT if is_console(request.path) else _OWN_SCRIPT
    response.headers["Content-Security-Policy"] = policy
    response.headers["Server"] = "Warren"
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException) and response.status >= 300:
        raise response
    return response


def make_app(portal: Portal) -> web.Application:
    # security_headers outermost: the 503 of storage_down gets the same headers as every page.
    app = web.Application(middlewares=[security_headers, storage_down], client_max_size=64 * 1024)
    app[PORTAL] = portal
    app.add_routes(routes)
    oidc.install(app)  # identity providers: /sign-in/oidc/NAME, /oidc/callback, buttons
    passkeys.install(app)  # /passkeys/...: register, sign in, remove; the button and list
    app.router.add_static("/static/", STATIC, follow_symlinks=False)  # the passkey script
    emailcode.install(app)  # e-mail codes: /sign-in/email, /sign-in/email/code, the form
    console.mount(app)  # /admin: its pages and the guard in front of them
    app.cleanup_ctx.append(_background)
    metrics.install(app)  # its counters for the views; its listener after _background starts
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    portal = app[PORTAL]

    async def status() -> dict[str, Any]:
        return _status(portal)

    await portal.services.start()  # other nodes' keys: their sessions and JWKS
    # The portal reads policy.yaml for the hosts it may send a signed-in browser back to.
    reloading = await Reloading.start(
        files=[portal.policy.path],
        interval=portal.settings.reload_poll.total_seconds(),
        reload=portal.policy.reload_async,
        control_path=control.portal_socket(portal.settings.state_dir),
        commands={"status": status},
    )
    yield
    reloading.close()
    await portal.services.close()


def _status(portal: Portal) -> dict[str, Any]:
    return {"ok": True, **portal.policy.status()}


async def _serve(settings: Settings) -> int:
    portal = Portal.from_settings(settings)
    runner = web.AppRunner(make_app(portal), access_log=None)
    await runner.setup()
    listen = settings.portal.listen
    site = web.TCPSite(runner, listen.host, listen.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("Warren portal for %s listening on %s", portal.origin, listen)
    # Only now: whoever was told it is ready may stop it at once, and must find it stoppable.
    notify_ready(f"listening on {listen}")
    await stop.wait()
    await runner.cleanup()
    return 0


def serve(config: Path) -> int:
    settings = setup_from_config("portal", config)  # core.logs: one format for all
    return asyncio.run(_serve(settings))
