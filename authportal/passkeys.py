"""Passkeys on the portal: the JSON endpoints authportal/static/passkeys.js calls to register a
passkey (signed in with an account) and to sign in with one (username-less, or as the second
factor after the password), the button on the sign-in and code pages, and the list with "Add a
passkey" and "Remove" on an account's home page. core.auth.passkeys does the WebAuthn checks.

Every POST carries the CSRF token (in its JSON body, or the form) and is checked for the
portal's own origin; the ceremony's challenge is bound to this browser by a short cookie."""

import asyncio
import json
import logging
import time
from html import escape
from typing import Any

from aiohttp import web

from authportal.metrics import lockout_fields, sign_in_outcome
from authportal.state import PORTAL, Person, Portal
from authportal.views import complete, html
from authportal.ways import HOME, SECOND_FACTOR, WAYS, HomeContext, WayContext
from core.auth import cookies, pages
from core.auth.passkeys import (
    CHALLENGE_SECONDS,
    PasskeyRefused,
    RelyingParty,
    add_passkey,
    authentication_options,
    owner,
    registration_options,
    remove_passkey,
    verify_authentication,
    verify_registration,
)
from core.auth.users import User, active_user
from core.logs import event
from core.metrics.portal import FAILED, LOCKED_OUT

log = logging.getLogger("warren.portal")
routes = web.RouteTableDef()

COOKIE = cookies.PASSKEY
SCRIPT = '<script src="/static/passkeys.js" defer></script>'
EXPIRED = "The page expired. Reload it and try again."
JSON = "application/json"
ENROL_SECONDS = 900  # how recent a sign-in must be to add a passkey


def _portal(request: web.Request) -> Portal:
    return request.app[PORTAL]


def _rp(portal: Portal) -> RelyingParty:
    return RelyingParty(portal.host, portal.origin.rstrip("/"))


def _refused(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object the script posted, its CSRF token checked (HTTPException otherwise)."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "Expected a JSON object."}), content_type=JSON
        )
    if not _portal(request).csrf_ok(request, str(body.get("csrf", ""))):
        raise web.HTTPForbidden(text=json.dumps({"error": EXPIRED}), content_type=JSON)
    return body


def _options(portal: Portal, options: str, browser: str) -> web.Response:
    response = web.Response(text=options, content_type="application/json")
    portal.set_cookie(response, COOKIE, browser, CHALLENGE_SECONDS)
    return response


async def _enrolling(request: web.Request) -> tuple[str, User] | web.Response:
    """The account adding a passkey, or the refusal. A passkey is a way in for good, so a
    stolen cookie or a weaker sign-in must not add one: the sign-in must be recent, and made
    with two factors when the account has a second factor already (a passkey with user
    verification counts as two, and must not be had for one)."""
    portal = _portal(request)
    who = await portal.signed_in(request)
    user = active_user(portal.users.current(), who.person.subject) if who else None
    if who is None or not who.person.account or user is None:
        return _refused("Sign in with your account first.", 401)
    amr = who.claims.get("amr")
    if user.two_factor and not (isinstance(amr, list) and "mfa" in amr):
        return _refused("Sign in with your second factor first, then add the passkey.", 403)
    if time.time() - float(who.claims.get("auth_time") or 0) > ENROL_SECONDS:
        return _refused("Sign in again to add a passkey (it must be a recent sign-in).", 403)
    return who.person.subject, user


@routes.post("/passkeys/register/options")
async def register_options(request: web.Request) -> web.Response:
    portal = _portal(request)
    await _body(request)
    enrolling = await _enrolling(request)
    if isinstance(enrolling, web.Response):
        return enrolling
    account, user = enrolling
    browser, options = await registration_options(portal.kv, _rp(portal), account, user)
    return _options(portal, options, browser)


@routes.post("/passkeys/register")
async def register(request: web.Request) -> web.Response:
    portal = _portal(request)
    body = await _body(request)
    enrolling = await _enrolling(request)
    if isinstance(enrolling, web.Response):
        return enrolling
    account = enrolling[0]
    credential = body.get("credential")
    name = body.get("name")
    if not isinstance(credential, dict) or not isinstance(name, str):
        return _refused("Expected a credential and a name.", 400)
    try:
        passkey = await verify_registration(
            portal.kv, _rp(portal), request.cookies.get(portal.cookie(COOKIE)), account,
            credential, name,
        )  # fmt: skip
        await asyncio.to_thread(add_passkey, portal.write_users, account, passkey)
    except (PasskeyRefused, ValueError) as error:
        log.info("passkey registration for %s refused: %s", account, error)
        return _cleared(portal, _refused("The passkey was not added. Please try again.", 400))
    event(log, "passkey-added", user=account, passkey=passkey.id[:12], name=passkey.name)
    return _cleared(portal, web.json_response({"location": "/"}))


def _pending(request: web.Request, body: dict[str, Any]) -> dict[str, Any] | None:
    """The password step's token, when the passkey is the second factor (from the code page);
    a passkey used from the sign-in page signs in on its own, whatever was typed before."""
    if body.get("step") != "code":
        return None
    return _portal(request).token(request, cookies.PENDING, "pending")


@routes.post("/passkeys/sign-in/options")
async def sign_in_options(request: web.Request) -> web.Response:
    portal = _portal(request)
    body = await _body(request)
    pending = _pending(request, body)
    account = str(pending["sub"]) if pending is not None else None
    user = active_user(portal.users.current(), account) if account else None
    if account is not None and (user is None or not user.passkeys):
        return _refused("This account has no passkey.", 400)
    browser, options = await authentication_options(portal.kv, _rp(portal), account, user)
    return _options(portal, options, browser)


@routes.post("/passkeys/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    portal = _portal(request)
    body = await _body(request)
    address = portal.client_ip(request)
    pending = _pending(request, body)
    rd = pending.get("rd") if pending is not None else body.get("rd")
    rd = rd if isinstance(rd, str) and rd else None
    target = portal.target(rd)
    if rd and target is None:
        return _refused("That sign-in link leads to an address Warren does not protect.", 400)
    credential = body.get("credential")
    users = portal.users.current()
    # Counted by client address, and by the account once the credential names one: a passkey
    # cannot be guessed, but a client trying assertions is stopped all the same.
    named = owner(users, credential.get("id")) if isinstance(credential, dict) else None
    lockout = await portal.regulation.locked(address, named or "")
    if lockout is not None:
        sign_in_outcome(
            request, LOCKED_OUT, user=named or "passkey", client=address, **lockout_fields(lockout)
        )
        return _refused("Too many failed attempts. Try again later.", 429)
    try:
        if not isinstance(credential, dict):
            raise PasskeyRefused("no credential")
        verified = await verify_authentication(
            portal.kv, _rp(portal), request.cookies.get(portal.cookie(COOKIE)), users, credential
        )
    except PasskeyRefused as error:
        await portal.regulation.failed(address, named or "")
        sign_in_outcome(
            request, FAILED, user=named or "passkey", client=address, reason=f"passkey: {error}"
        )
        return _cleared(portal, _refused("That passkey was not accepted. Please try again.", 401))
    if pending is not None and pending["sub"] == verified.account:
        amr = ["pwd", "hwk", "mfa"]  # the password, then the passkey instead of the TOTP code
    else:  # a passkey whose authenticator verified the person (PIN, biometric) is two factors
        amr = ["hwk", "mfa"] if verified.user_verified else ["hwk"]
    try:
        await complete(request, portal, Person(verified.account, None, ()), amr, target)
    except web.HTTPSeeOther as redirect:  # the script goes where the form would have
        response = web.json_response({"location": redirect.location})
        for cookie in redirect.headers.getall("Set-Cookie", []):
            response.headers.add("Set-Cookie", cookie)
        return _cleared(portal, response)
    raise AssertionError("complete() always redirects")


def _cleared(portal: Portal, response: web.Response) -> web.Response:
    portal.clear_cookie(response, COOKIE)
    return response


@routes.post("/passkeys/remove")
async def remove(request: web.Request) -> web.Response:
    portal = _portal(request)
    form = await request.post()
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return html(
            pages.notice("The form expired", "Nothing was changed.", link=("Back", "/")), 403
        )
    who = await portal.signed_in(request)
    if who is None or not who.person.account:
        raise web.HTTPSeeOther("/sign-in")
    account = who.person.subject
    credential_id = str(form.get("id", ""))[:1400]
    try:
        removed = await asyncio.to_thread(
            remove_passkey, portal.write_users, account, credential_id
        )
    except ValueError:
        return html(
            pages.notice("No such passkey", "Nothing was changed.", link=("Back", "/")), 404
        )
    event(log, "passkey-removed", user=account, passkey=removed.id[:12], name=removed.name)
    raise web.HTTPSeeOther("/")


def _problem() -> str:
    return '<p class="error" role="alert" id="passkey-problem" hidden></p>'


def button(ways: WayContext) -> str:
    """ "Sign in with a passkey", once any account has one; shown by the script (it needs
    JavaScript, which the rest of the page does not)."""
    if not any(user.passkeys for user in ways.portal.users.current().users.values()):
        return ""
    rd = f' data-rd="{escape(ways.rd)}"' if ways.rd else ""
    return f"""<div class="ways passkey">
<p><button type="button" class="secondary" data-passkey="sign-in" data-csrf="{escape(ways.csrf)}"
{rd} hidden>Sign in with a passkey</button></p>
{_problem()}
<noscript><p class="small">Signing in with a passkey needs JavaScript; the other ways here work
without it.</p></noscript>
</div>
{SCRIPT}"""


def second_factor(home: HomeContext) -> str:
    """On the code step of an account with passkeys: the passkey instead of the TOTP code."""
    if not home.user.passkeys:
        return ""
    label = "Use a passkey instead" if home.user.totp is not None else "Use your passkey"
    return f"""<div class="ways passkey">
<p><button type="button" class="secondary" data-passkey="sign-in" data-step="code"
 data-csrf="{escape(home.csrf)}" hidden>{label}</button></p>
{_problem()}
</div>
{SCRIPT}"""


def listing(home: HomeContext) -> str:
    """An account's passkeys, each with Remove, and "Add a passkey" with a name."""
    items = "".join(
        f'<li>{escape(p.name)} <span class="small">added {escape(p.created or "?")}</span>'
        f'<form method="post" action="/passkeys/remove">'
        f'<input type="hidden" name="csrf" value="{escape(home.csrf)}">'
        f'<input type="hidden" name="id" value="{escape(p.id)}">'
        f'<button type="submit" class="secondary">Remove {escape(p.name)}</button></form></li>'
        for p in home.user.passkeys
    )
    listed = f'<ul class="apps passkeys">{items}</ul>' if items else "<p>None yet.</p>"
    return f"""<section class="passkeys" aria-labelledby="passkeys-title">
<h2 id="passkeys-title" class="small">Passkeys</h2>
{listed}
<div hidden><!-- shown by the script: a form's display:grid would beat `hidden` -->
<form id="passkey-add" data-passkey="register" data-csrf="{escape(home.csrf)}">
<label for="passkey-name">Name of the new passkey
<input id="passkey-name" name="name" maxlength="100" placeholder="e.g. laptop"></label>
<button type="submit" class="secondary">Add a passkey</button>
{_problem()}
</form></div>
<noscript><p class="small">Adding a passkey needs JavaScript.</p></noscript>
</section>
{SCRIPT}"""


def install(app: web.Application) -> None:
    """The routes and the parts of the sign-in, code and home pages."""
    app.add_routes(routes)
    if button not in WAYS:
        WAYS.append(button)
    if second_factor not in SECOND_FACTOR:
        SECOND_FACTOR.append(second_factor)
    if listing not in HOME:
        HOME.insert(0, listing)  # above the "Link <provider>" buttons
