"""Who may open the console, decided once for every URL under /admin, before any route is
looked up: a page added later, a path that matches no page, and every method are covered alike.

Allowed: a portal sign-in that is valid now (token, account not deleted or disabled, session not
revoked: `Portal.signed_in`), of a users.yaml account in `admin.group` as the file says now
(never someone without an account, whatever groups a provider maps them to), made with two
factors (the sign-in's amr holds "mfa", RFC 8176's "multiple-factor": a TOTP or recovery code
after the password, or a passkey that verified its user). Anyone else:
not signed in, sent to sign in and back; signed in, 403 whatever they ask for. Every POST then
also needs the form's CSRF token and its own Origin (core.auth.csrf, as the sign-in form).
"""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from authportal.console.render import forbidden
from authportal.state import PORTAL, Portal, SignedIn

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/admin"
ADMIN = web.RequestKey("console_admin", SignedIn)
SECOND_FACTOR = "mfa"  # RFC 8176 authentication method reference: more than one factor


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def refusal(who: SignedIn, group: str) -> str | None:
    """Why this signed-in person may not use the console; None when they may."""
    if not who.person.account or group not in who.person.groups:
        return f"Only members of the {group} group may open the admin console."
    amr: Any = who.claims.get("amr")
    if not isinstance(amr, list) or SECOND_FACTOR not in amr:
        return (
            "The admin console needs a sign-in with two-step verification. Sign out and sign "
            "in again with your verification code or a passkey (an admin enrols a code with "
            "`warren user 2fa`)."
        )
    return None


def sign_in_url(portal: Portal, request: web.Request) -> str:
    """The sign-in page, coming back here after: only to a page (a POST's target cannot be
    returned to by a redirect), and only when the portal's host may be a destination."""
    back = request.path_qs if request.method in ("GET", "HEAD") else PREFIX
    if portal.target(portal.origin + back) is None:
        return "/sign-in"
    return "/sign-in?" + urlencode({"rd": portal.origin + back})


@web.middleware
async def admins_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_console(request.path):
        return await handler(request)
    portal = request.app[PORTAL]
    who = await portal.signed_in(request)
    if who is None:
        raise web.HTTPSeeOther(sign_in_url(portal, request))
    why = refusal(who, portal.settings.admin.group)
    if why is not None:
        return forbidden(request, why)
    if request.method == "POST":
        form = await request.post()
        if not portal.csrf_ok(request, str(form.get("csrf", ""))):
            return forbidden(request, "The form expired. Nothing was changed; try again.")
    request[ADMIN] = who
    return await handler(request)


def admin(request: web.Request) -> SignedIn:
    """The admin the guard let in; a handler reached without the guard answers 403."""
    try:
        return request[ADMIN]
    except KeyError:
        raise web.HTTPForbidden() from None
