"""The sidecar's registration API. It listens on loopback; the gateway carries requests for
`/.warren/sites/` on the node's HTTPS address to it, so sites reach it with the node's
certificate and no other port is open."""

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from core.tunnels import REGISTER_PATH
from sidecar.registry import RegistrationRefused

log = logging.getLogger("warren.sidecar")

type Register = Callable[[str, str, str, str], dict[str, Any]]  # site, secret, key, from


def make_app(register: Register) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        caller = request.headers.get("x-forwarded-for") or request.remote or "?"
        secret = _bearer(request.headers.get("authorization", ""))
        if secret is None:
            return _refuse(401, "a site registers with Authorization: Bearer <its secret>")
        try:
            body = await request.json()
        except ValueError:
            return _refuse(400, "the body must be JSON: {site, public_key}")
        site = body.get("site") if isinstance(body, dict) else None
        public_key = body.get("public_key") if isinstance(body, dict) else None
        if not isinstance(site, str) or not isinstance(public_key, str):
            return _refuse(400, "the body must be JSON: {site, public_key}")
        try:
            return web.json_response(register(site, secret, public_key, caller))
        except RegistrationRefused as refused:
            return _refuse(refused.status, str(refused))

    app = web.Application(client_max_size=16 * 1024)
    app.router.add_post(REGISTER_PATH, handle)
    return app


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _refuse(status: int, reason: str) -> web.Response:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": reason}, status=status, headers=headers)
