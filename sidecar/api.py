"""The sidecar's registration API. It listens on loopback; the gateway carries requests for
`/.warren/sites/` on the node's HTTPS address to it, so sites reach it with the node's
certificate and no other port is open."""

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from core.tunnels import REGISTER_PATH, TUNNEL_PATH
from sidecar.apirules import bearer, refuse
from sidecar.registry import RegistrationRefused
from sidecar.streamnode import Streams

log = logging.getLogger("warren.sidecar")

type Register = Callable[[str, str, str, str], dict[str, Any]]  # site, secret, key, from


def make_app(register: Register, streams: Streams | None = None) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        caller = request.headers.get("x-forwarded-for") or request.remote or "?"
        secret = bearer(request.headers.get("authorization", ""))
        if secret is None:
            return refuse(401, "a site registers with Authorization: Bearer <its secret>")
        try:
            body = await request.json()
        except ValueError:
            return refuse(400, "the body must be JSON: {site, public_key}")
        site = body.get("site") if isinstance(body, dict) else None
        public_key = body.get("public_key") if isinstance(body, dict) else None
        if not isinstance(site, str) or not isinstance(public_key, str):
            return refuse(400, "the body must be JSON: {site, public_key}")
        try:
            return web.json_response(register(site, secret, public_key, caller))
        except RegistrationRefused as refused:
            return refuse(refused.status, str(refused))

    app = web.Application(client_max_size=16 * 1024)
    app.router.add_post(REGISTER_PATH, handle)
    if streams is not None:
        app.router.add_get(TUNNEL_PATH, streams.handle)  # the TCP/443 fallback (docs/tunnels.md)
        app.on_shutdown.append(streams.close_all)
    return app
