"""Sign in with an e-mail code, for a resource that admits people by address (`auth: {emails,
email_domains}`): the form on the sign-in page, the e-mail (core.mail), and the code form
(core.auth.emailcodes keeps and checks the codes).

Whether an address is on the list never shows: every well-formed request gets the same answer
page, and a mail goes out only to a listed address. The address, the way back and a secret of
this browser wait in a short signed cookie (token use `email`); the code works only with it, so
a code read over someone's shoulder is no use in another browser. Requests and wrong codes
are regulated like passwords, under the name `email:<address>` and the client's address."""

import logging
import secrets
from email.message import EmailMessage
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from authportal.metrics import lockout_fields, sign_in_outcome
from authportal.state import PORTAL, Person, Portal
from authportal.views import complete, html, sign_in_page, with_csrf
from authportal.ways import WAYS, WayContext
from core import mail
from core.auth import cookies, pages
from core.auth.emailcodes import EmailCodes, Redeemed, may_ask, normalized, readable
from core.auth.redirects import RedirectTarget
from core.auth.regulation import Lockout
from core.auth.tokens import mint
from core.logs import event
from core.metrics.portal import FAILED, LOCKED_OUT
from core.signinsettings import Smtp

log = logging.getLogger("warren.portal")
routes = web.RouteTableDef()

COOKIE = cookies.EMAIL
ASK = "/sign-in/email"
CODE = "/sign-in/email/code"
AMR = ["email"]  # docs/identity.md: not in RFC 8176's registry, as `oidc` is not
# The code form outlives its code, so a late visitor is told the code expired (and can ask again
# from there) rather than sent back to a sign-in page that forgot where they were going.
FORM_SLACK_SECONDS = 600


def _portal(request: web.Request) -> Portal:
    return request.app[PORTAL]


def _lists(target: RedirectTarget | None) -> bool:
    auth = target.resource.auth if target is not None else None
    return auth is not None and bool(auth.emails or auth.email_domains)


def _codes(portal: Portal, smtp: Smtp) -> EmailCodes:
    return EmailCodes(portal.kv, smtp.code_lifetime.total_seconds())


def _notice(title: str, text: str, status: int, back: str = "/sign-in") -> web.Response:
    return html(pages.notice(title, text, link=("Back to sign-in", back)), status)


def _back_to(rd: str | None) -> str:
    return "/sign-in" + (f"?{urlencode({'rd': rd})}" if rd else "")


def _wait(lockout: Lockout) -> str:
    minutes = max(1, round(lockout.retry_after / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def _how_long(seconds: float) -> str:
    if seconds < 120:
        return f"{round(seconds)} seconds"
    return f"{round(seconds / 60)} minutes"


@routes.post(ASK)
async def ask(request: web.Request) -> web.Response:
    portal = _portal(request)
    smtp = portal.settings.smtp
    form = await request.post()
    rd = str(form.get("rd", "")) or None
    target = portal.target(rd)
    if target is None or not _lists(target) or smtp is None:
        return _notice(
            "No e-mail codes here",
            "This address does not lead to an application that admits people by e-mail.",
            400,
        )
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return sign_in_page(
            request, target, rd, error="The form expired. Please try again.", status=403
        )
    address = normalized(str(form.get("email", ""))[:400])
    if address is None:
        return sign_in_page(request, target, rd, error="That is not an e-mail address.", status=400)
    client = portal.client_ip(request)
    name = f"email:{address}"
    lockout = await portal.regulation.locked(client, name)
    if lockout is not None:
        sign_in_outcome(request, LOCKED_OUT, user=name, client=client, **lockout_fields(lockout))
        return sign_in_page(
            request,
            target,
            rd,
            error=f"Too many attempts. Try again in {_wait(lockout)}.",
            status=429,
        )
    # Every request counts, sent or not: what keeps one client from asking for many addresses.
    await portal.regulation.failed(client, name)
    # A browser that asked already keeps its secret: the code it was sent stays usable.
    earlier = portal.token(request, COOKIE, "email")
    browser = str(earlier.get("browser") or "") if earlier else ""
    browser = browser or secrets.token_urlsafe(24)
    codes = _codes(portal, smtp)
    resource = target.resource.name
    if not may_ask(address, target.resource.auth):
        event(log, "email-code", outcome="not-listed", resource=resource, client=client)
    elif not await codes.may_send(address):
        event(log, "email-code", outcome="resend-wait", resource=resource, client=client)
    else:
        code = await codes.issue(resource, address, browser)
        try:
            await mail.send(smtp, _message(smtp, address, code, target, codes.lifetime))
        except mail.MailError as error:
            await codes.withdraw(resource, address)  # nothing stays that could be used
            await codes.unclaim(address)
            log.warning("the e-mail code for %s was not sent: %s", resource, error)
            sign_in_outcome(request, FAILED, user=name, client=client, reason="mail-not-sent")
            return _notice(
                "Warren could not send the e-mail",
                "The mail server did not take the message, so no code was sent. "
                "Try again in a few minutes, or sign in another way.",
                503,
                _back_to(target.url),
            )
        event(log, "email-code", outcome="sent", resource=resource, client=client)
    pending = mint(
        portal.keys,
        use="email",
        issuer=portal.origin,
        audience=portal.host,
        subject=address,
        lifetime=codes.lifetime + FORM_SLACK_SECONDS,
        claims={"rd": target.url, "res": resource, "browser": browser},
    )
    response = web.HTTPSeeOther(CODE)
    portal.set_cookie(response, COOKIE, pending, int(codes.lifetime) + FORM_SLACK_SECONDS)
    raise response


def _message(
    smtp: Smtp, address: str, code: str, target: RedirectTarget, lifetime: float
) -> EmailMessage:
    # No link with the code in it: the code is typed where it was asked for, so a forwarded or
    # scanned mail (link checkers follow links) cannot sign anyone in.
    body = (
        f"Your code to sign in to {target.host} ({target.resource.name}):\n\n"
        f"    {code}\n\n"
        f"It works once, for {_how_long(lifetime)}, in the browser where you asked for it.\n\n"
        "If you did not ask for it, ignore this e-mail: without the code nobody can sign in.\n"
    )
    return mail.message(smtp, address, f"Your sign-in code for {target.host}", body)


def _code_page(
    csrf: str, address: str, target: RedirectTarget | None, error: str | None = None
) -> str:
    where = target.host if target is not None else "the application"
    problem = f'<p class="error" role="alert" id="problem">{escape(error)}</p>' if error else ""
    invalid = ' aria-invalid="true" aria-describedby="problem"' if error else ""
    again = _back_to(target.url if target is not None else None)
    body = f"""<h1>Check your e-mail</h1>
<p>If <strong>{escape(address)}</strong> may use <strong>{escape(where)}</strong>, a code is on
its way. Type it here, in this browser.</p>
<form method="post" action="{CODE}">
{problem}
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label for="code">Code from the e-mail
<input id="code" name="code" inputmode="numeric" maxlength="20" autocomplete="one-time-code"
 required autofocus{invalid}></label>
<button type="submit">Sign in</button>
</form>
<p class="small">Nothing arrived? Check the address, wait a minute, and
<a href="{escape(again)}">ask again</a>.</p>"""
    return pages.page("Check your e-mail", body)


@routes.get(CODE)
async def code_form(request: web.Request) -> web.Response:
    portal = _portal(request)
    pending = portal.token(request, COOKIE, "email")
    if pending is None:
        raise web.HTTPSeeOther("/sign-in")
    target = portal.target(str(pending.get("rd", "")))

    def render(csrf: str) -> str:
        return _code_page(csrf, str(pending["sub"]), target)

    return with_csrf(request, render)


@routes.post(CODE)
async def redeem(request: web.Request) -> web.Response:
    portal = _portal(request)
    pending = portal.token(request, COOKIE, "email")
    smtp = portal.settings.smtp
    if pending is None or smtp is None:
        raise web.HTTPSeeOther("/sign-in")
    form = await request.post()
    address = str(pending["sub"])
    target = portal.target(str(pending.get("rd", "")))
    resource = str(pending.get("res", ""))

    def again(error: str, status: int) -> web.Response:
        return with_csrf(request, lambda csrf: _code_page(csrf, address, target, error), status)

    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return again("The form expired. Please try again.", 403)
    client = portal.client_ip(request)
    name = f"email:{address}"
    lockout = await portal.regulation.locked(client, name)
    if lockout is not None:
        sign_in_outcome(request, LOCKED_OUT, user=name, client=client, **lockout_fields(lockout))
        return again(f"Too many attempts. Try again in {_wait(lockout)}.", 429)
    code = readable(str(form.get("code", ""))[:40])
    outcome = Redeemed.WRONG
    if code:
        outcome = await _codes(portal, smtp).redeem(
            resource, address, str(pending.get("browser", "")), code
        )
    # The policy may have changed since the code was sent: the list decides now (fail closed).
    still_listed = (
        target is not None
        and target.resource.name == resource
        and may_ask(address, target.resource.auth)
    )
    if outcome is not Redeemed.RIGHT or not still_listed:
        await portal.regulation.failed(client, name)
        why = "not-listed" if outcome is Redeemed.RIGHT else f"code-{outcome.value}"
        sign_in_outcome(request, FAILED, user=name, client=client, reason=why)
        if outcome is Redeemed.NONE:
            return again(
                "There is no code waiting: it expired, was used, or was mistyped too often. "
                "Ask for a new one.",
                401,
            )
        return again("That code is not right. Check the e-mail and try again.", 401)
    person = Person(address, address, (), provider="email")
    try:
        return await complete(request, portal, person, AMR, target)
    except web.HTTPSeeOther as response:
        portal.clear_cookie(response, COOKIE)
        raise


def form(ways: WayContext) -> str:
    """On the sign-in page, when the resource admits people by e-mail (and SMTP is set)."""
    if ways.portal.settings.smtp is None or not _lists(ways.target) or ways.rd is None:
        return ""
    return f"""<section class="alt email" aria-labelledby="email-title">
<h2 id="email-title" class="small">Sign in with an e-mail code</h2>
<form method="post" action="{ASK}">
<input type="hidden" name="csrf" value="{escape(ways.csrf)}">
<input type="hidden" name="rd" value="{escape(ways.rd)}">
<label for="email">Your e-mail address
<input id="email" name="email" type="email" autocomplete="email" autocapitalize="none"
 spellcheck="false" required></label>
<button type="submit" class="secondary">Send me a code</button>
</form>
</section>"""


def install(app: web.Application) -> None:
    """The routes, and the form on the sign-in page."""
    app.add_routes(routes)
    if form not in WAYS:
        WAYS.append(form)
