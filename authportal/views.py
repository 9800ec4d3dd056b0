"""The portal's pages: sign in (password, then a TOTP code when enrolled), a resource's password
or PIN, signed in, sign out. Every form carries a CSRF token; every redirect target is checked
(`core.auth.redirects`); failed attempts are regulated (`core.auth.regulation`)."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlencode

import pyotp
from aiohttp import web

from authportal.metrics import lockout_fields, resource_password_outcome, sign_in_outcome
from authportal.state import PENDING_SECONDS, PORTAL, Person, Portal, SignedIn
from authportal.ways import HOME, SECOND_FACTOR, WAYS, HomeContext, WayContext
from core.auth import cookies, pages, recovery, sessions
from core.auth.access import permitted
from core.auth.redirects import RedirectTarget
from core.auth.regulation import Lockout
from core.auth.tokens import fingerprint, mint
from core.auth.users import active_user, authenticate, check_secret
from core.logs import event
from core.metrics.portal import FAILED, LOCKED_OUT, SECOND_FACTOR_FAILED, SUCCEEDED

log = logging.getLogger("warren.portal")
routes = web.RouteTableDef()

type Render = Callable[[str], str]  # the page, given the form's CSRF token

WRONG = "The username or password is not right."
TOTP_REUSE_SECONDS = 120  # a code is valid for at most 90 s (window of one step each side)
RECOVERY_SECONDS = 400 * 86400  # a spent recovery code stays claimed (and leaves users.yaml)


def _portal(request: web.Request) -> Portal:
    return request.app[PORTAL]


def html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _locked_message(lockout: Lockout) -> str:
    minutes = max(1, round(lockout.retry_after / 60))
    wait = "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"Too many failed attempts. Try again in {wait}."


def with_csrf(request: web.Request, render: Render, status: int = 200) -> web.Response:
    portal = _portal(request)
    token, fresh = portal.csrf(request)
    response = html(render(token), status)
    if fresh:
        portal.set_cookie(response, cookies.CSRF, token, int(portal.session_seconds))
    return response


def sign_in_page(
    request: web.Request,
    target: RedirectTarget | None,
    rd: str | None,
    *,
    error: str | None = None,
    username: str = "",
    entry_error: str | None = None,
    status: int = 200,
) -> web.Response:
    auth = target.resource.auth if target is not None else None
    kind = None
    if auth is not None:
        kind = "pin" if auth.pin_hash else "password" if auth.password_hash else None
    destination = target.host if target is not None else None

    portal = _portal(request)
    kept_rd = rd if target is not None else None

    def render(csrf: str) -> str:
        ways = WayContext(portal, csrf, kept_rd, target)
        return pages.sign_in(
            csrf=csrf,
            rd=kept_rd,
            destination=destination,
            error=error,
            username=username,
            secret_kind=kind,
            entry_error=entry_error,
            password_form=portal.settings.portal.password_form,
            extra="".join(way(ways) for way in WAYS),
        )

    return with_csrf(request, render, status)


def _bad_destination() -> web.Response:
    return html(
        pages.notice(
            "This sign-in link is not valid",
            "It leads to an address Warren does not protect, so Warren will not send you there.",
            link=("Sign in to Warren", "/sign-in"),
        ),
        400,
    )


async def _land(portal: Portal, who: SignedIn, target: RedirectTarget | None) -> web.Response:
    """Signed in: on to the resource through its callback, or to the portal's own page."""
    if target is None:
        raise web.HTTPSeeOther("/")
    if target.host == portal.host:
        raise web.HTTPSeeOther(target.path)
    url = await portal.code_for(target, "session", portal.resource_session(who, target))
    raise web.HTTPSeeOther(url)


@routes.get("/sign-in")
async def sign_in_form(request: web.Request) -> web.Response:
    portal = _portal(request)
    rd = request.query.get("rd")
    target = portal.target(rd)
    if rd and target is None:
        return _bad_destination()
    who = await portal.signed_in(request)
    if who is not None:
        return await _land(portal, who, target)
    return sign_in_page(request, target, rd)


@routes.post("/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    portal = _portal(request)
    form = await request.post()
    rd = str(form.get("rd", "")) or None
    target = portal.target(rd)
    if rd and target is None:
        return _bad_destination()
    username = str(form.get("username", "")).strip()[:200]
    password = str(form.get("password", ""))[:1000]
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return sign_in_page(
            request, target, rd, error="The form expired. Please try again.", status=403
        )
    address = portal.client_ip(request)
    lockout = await portal.regulation.locked(address, username)
    if lockout is not None:
        sign_in_outcome(
            request, LOCKED_OUT, user=username, client=address, **lockout_fields(lockout)
        )
        return sign_in_page(
            request, target, rd, error=_locked_message(lockout), username=username, status=429
        )
    users = portal.users.current()
    user = await asyncio.to_thread(authenticate, users, username, password)
    if user is None:
        await portal.regulation.failed(address, username)
        sign_in_outcome(request, FAILED, user=username, client=address)
        return sign_in_page(request, target, rd, error=WRONG, username=username, status=401)
    if user.two_factor:  # a TOTP code or a passkey confirms the password
        pending = mint(
            portal.keys,
            use="pending",
            issuer=portal.origin,
            audience=portal.host,
            subject=username,
            lifetime=PENDING_SECONDS,
            claims={"rd": target.url if target else None},
        )
        response = web.HTTPSeeOther("/sign-in/code")
        portal.set_cookie(response, cookies.PENDING, pending, PENDING_SECONDS)
        raise response
    return await complete(request, portal, Person.of_account(username, user), ["pwd"], target)


async def complete(
    request: web.Request,
    portal: Portal,
    person: Person,
    amr: list[str],
    target: RedirectTarget | None,
) -> web.Response:
    """The one way every method finishes a sign-in: recorded in the shared state, the portal's
    cookie set, and on to the resource through its one-time code (raises the redirect)."""
    if person.account:
        user = active_user(portal.users.current(), person.subject)
        if user is None:  # deleted or disabled between the password and the code
            raise web.HTTPSeeOther("/sign-in")
        person = Person.of_account(person.subject, user)
    address = portal.client_ip(request)
    token, who = await portal.portal_session(person, amr, address)
    username = person.subject
    sign_in_outcome(request, SUCCEEDED, user=username, client=address, methods="+".join(amr))
    try:
        return await _land(portal, who, target)
    except web.HTTPSeeOther as response:
        portal.set_cookie(response, cookies.PORTAL, token, int(portal.session_seconds))
        portal.clear_cookie(response, cookies.PENDING)
        raise


@routes.get("/sign-in/code")
async def second_factor_form(request: web.Request) -> web.Response:
    portal = _portal(request)
    pending = portal.token(request, cookies.PENDING, "pending")
    if pending is None:
        raise web.HTTPSeeOther("/sign-in")
    rd = pending.get("rd")
    user = active_user(portal.users.current(), pending["sub"])

    def render(csrf: str) -> str:
        context = HomeContext(portal, csrf, pending["sub"], user) if user is not None else None
        added = "".join(part(context) for part in SECOND_FACTOR) if context is not None else ""
        # An account with passkeys and no TOTP has no code to type (its recovery codes, if
        # any, still work): the page offers only the passkey.
        code = user is None or user.totp is not None or bool(user.recovery)
        return pages.second_factor(
            csrf=csrf, rd=rd if isinstance(rd, str) else None, extra=added, code=code
        )

    return with_csrf(request, render)


@routes.post("/sign-in/code")
async def second_factor(request: web.Request) -> web.Response:
    portal = _portal(request)
    pending = portal.token(request, cookies.PENDING, "pending")
    if pending is None:
        raise web.HTTPSeeOther("/sign-in")
    form = await request.post()
    username = pending["sub"]
    rd = pending.get("rd") if isinstance(pending.get("rd"), str) else None
    target = portal.target(rd)

    def again(error: str, status: int) -> web.Response:
        def render(csrf: str) -> str:
            return pages.second_factor(csrf=csrf, rd=rd, error=error)

        return with_csrf(request, render, status)

    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return again("The form expired. Please try again.", 403)
    address = portal.client_ip(request)
    lockout = await portal.regulation.locked(address, username)
    if lockout is not None:
        sign_in_outcome(
            request, LOCKED_OUT, user=username, client=address, **lockout_fields(lockout)
        )
        return again(_locked_message(lockout), 429)
    code = str(form.get("code", "")).strip().replace(" ", "")[:40]
    user = active_user(portal.users.current(), username)
    amr = ["pwd", "otp", "mfa"]
    if user is not None and recovery.normal(code) is not None:  # in place of the TOTP code
        amr = ["pwd", "rec", "mfa"]
        good = await _spend_recovery_code(portal, username, user.recovery, code)
    else:
        good = (
            user is not None
            and user.totp is not None
            and code.isdigit()
            and len(code) == 6
            and pyotp.TOTP(user.totp).verify(code, valid_window=1)
            and await sessions.first_use(portal.kv, f"totp:{username}:{code}", TOTP_REUSE_SECONDS)
        )
    if not good:
        await portal.regulation.failed(address, username)
        sign_in_outcome(request, SECOND_FACTOR_FAILED, user=username, client=address)
        return again("That code is not right, or was already used. Try the next one.", 401)
    return await complete(request, portal, Person(username, None, ()), amr, target)


async def _spend_recovery_code(
    portal: Portal, username: str, stored: tuple[str, ...], code: str
) -> bool:
    """A recovery code works once: struck from users.yaml, and first claimed in the shared
    state, so two nodes given the same code at the same moment cannot both accept it."""
    used = recovery.matching(stored, code)
    if used is None:
        return False
    if not await sessions.first_use(portal.kv, f"recovery:{username}:{used}", RECOVERY_SECONDS):
        return False
    return await asyncio.to_thread(recovery.spend, portal.write_users, username, used)


@routes.post("/password")
async def resource_secret(request: web.Request) -> web.Response:
    portal = _portal(request)
    form = await request.post()
    rd = str(form.get("rd", "")) or None
    target = portal.target(rd)
    auth = target.resource.auth if target is not None else None
    secret_hash = (auth.password_hash or auth.pin_hash) if auth is not None else None
    if target is None or secret_hash is None:
        return _bad_destination()
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return sign_in_page(
            request, target, rd, entry_error="The form expired. Please try again.", status=403
        )
    address = portal.client_ip(request)
    name = f"resource:{target.resource.name}"
    lockout = await portal.regulation.locked(address, name)
    if lockout is not None:
        resource_password_outcome(
            request, LOCKED_OUT, resource=target.resource.name, client=address
        )
        return sign_in_page(request, target, rd, entry_error=_locked_message(lockout), status=429)
    secret = str(form.get("secret", ""))[:1000]
    if not await asyncio.to_thread(check_secret, secret_hash, secret):
        await portal.regulation.failed(address, name)
        resource_password_outcome(request, FAILED, resource=target.resource.name, client=address)
        return sign_in_page(
            request, target, rd, entry_error="That is not the right one.", status=401
        )
    token = mint(
        portal.keys,
        use="password",
        issuer=portal.origin,
        audience=target.host,
        subject=f"password:{target.resource.name}",
        lifetime=portal.session_seconds,
        claims={"res": target.resource.name, "pwv": fingerprint(secret_hash)},
    )
    resource_password_outcome(request, SUCCEEDED, resource=target.resource.name, client=address)
    raise web.HTTPSeeOther(await portal.code_for(target, "password", token))


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    portal = _portal(request)
    who = await portal.signed_in(request)
    if who is None:
        raise web.HTTPSeeOther("/sign-in")
    person = who.person
    apps = _applications(portal, who)

    user = portal.users.current().users.get(person.subject) if person.account else None

    def render(csrf: str) -> str:
        # The parts' additions for an account ("Link <provider>"), above the sign-out button.
        context = HomeContext(portal, csrf, person.subject, user) if user is not None else None
        added = "".join(part(context) for part in HOME) if context is not None else ""
        return pages.signed_in(
            user=person.subject,
            email=person.email,
            groups=person.groups,
            apps=apps,
            csrf=csrf,
            extra=added,
        )

    return with_csrf(request, render)


def _applications(portal: Portal, who: SignedIn) -> list[tuple[str, str]]:
    scheme = "https" if portal.https else "http"
    port = portal.origin.rpartition(":")[2]
    suffix = f":{port}" if port.isdigit() else ""
    found = []
    person = who.person  # groups and e-mail as users.yaml says now, for an account
    now = replace(who.identity, groups=person.groups, email=person.email)
    for name, resource in sorted(portal.policy.current.resources.items()):
        hosts = [h for h in resource.model.host or () if not h.startswith("*.")]
        if not hosts or hosts[0] == portal.host or resource.public:
            continue
        if permitted(now, resource.auth):
            found.append((name, f"{scheme}://{hosts[0]}{suffix}/"))
    return found


async def _sign_out(request: web.Request) -> web.Response:
    portal = _portal(request)
    form = await request.post()
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return html(
            pages.notice(
                "The form expired",
                "Nothing was changed. Please try again.",
                link=("Back", "/sign-out"),
            ),
            403,
        )
    who = await portal.signed_in(request)
    if who is not None and who.identity.session_id is not None:
        await sessions.revoke_session(portal.kv, who.identity.session_id, who.identity.expires)
        event(log, "sign-out", user=who.identity.subject, session=who.identity.session_id)
    response = web.HTTPSeeOther("/signed-out")
    portal.clear_cookie(response, cookies.PORTAL)
    raise response


@routes.get("/sign-out")
@routes.get("/.warren/logout")
async def sign_out_form(request: web.Request) -> web.Response:
    def render(csrf: str) -> str:
        return pages.confirm_sign_out(action="/sign-out", csrf=csrf)

    return with_csrf(request, render)


@routes.post("/sign-out")
@routes.post("/.warren/logout")
async def sign_out(request: web.Request) -> web.Response:
    return await _sign_out(request)


@routes.get("/signed-out")
async def signed_out(request: web.Request) -> web.Response:
    portal = _portal(request)
    rd = request.query.get("rd")
    target = portal.target(rd)
    again = "/sign-in" + (f"?{urlencode({'rd': target.url})}" if target else "")
    response = html(pages.signed_out(sign_in_url=again))
    portal.clear_cookie(response, cookies.PORTAL)
    portal.clear_cookie(response, cookies.PENDING)
    return response


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(
        _portal(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")
