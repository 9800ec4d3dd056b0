"""The console, added to the portal's application in one call (authportal.app.make_app)."""

from aiohttp import web

import authportal.console.render as render
from authportal.console.access import admins_only
from authportal.console.pages import routes


def mount(app: web.Application) -> None:
    render.setup(app)
    app.middlewares.append(admins_only)  # innermost: the 503 and headers wrap its answers too
    app.add_routes(routes)
