"""The console's pages: Jinja2 templates (authportal/console/templates) through aiohttp-jinja2,
autoescaped, with no script (the portal's Content-Security-Policy allows none) and no front-end
build: plain forms that work with JavaScript off."""

from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from authportal.manage import how
from authportal.state import PORTAL
from core.auth import cookies


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("authportal.console", "templates"),
        autoescape=True,  # Jinja2's default is off; every value here comes from outside
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
        filters={"utc": utc, "age": age, "size": size, "how": how},
    )


def utc(moment: object) -> str:
    """A Unix time or an ISO 8601 text as admins read it (and `warren sessions list` prints)."""
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(moment) if moment else "-"


def age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "never"
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit} ago"
    return f"{int(seconds)}s ago"


def size(count: object) -> str:
    amount = float(count) if isinstance(count, int | float) else 0.0
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def page(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A console page with its forms' CSRF token (set as a cookie when new, as the sign-in
    form's is)."""
    portal = request.app[PORTAL]
    token, fresh = portal.csrf(request)
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {"csrf": token, "path": request.path, "node": portal.settings.node_name, **context},
        status=status,
    )
    if fresh:
        portal.set_cookie(response, cookies.CSRF, token, int(portal.session_seconds))
    return response


def forbidden(request: web.Request, why: str) -> web.Response:
    return aiohttp_jinja2.render_template("forbidden.html", request, {"why": why}, status=403)
