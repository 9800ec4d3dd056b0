"""Sign in with an OpenID Connect provider: the button on the sign-in page, the redirect to the
provider, and its callback (core.auth.oidc checks what comes back). Also linking a provider's
user to the signed-in account, from the portal's home page.

The state, nonce and PKCE verifier wait in the shared state under the hash of a random value
that only this browser's cookie holds, and are taken once: a callback from another browser, or
the same callback twice, finds nothing (RFC 6749 §10.12, OIDC Core §3.1.2.1)."""

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from authportal.metrics import lockout_fields, sign_in_outcome
from authportal.state import PORTAL, Person, Portal
from authportal.views import complete, html
from authportal.ways import HOME, WAYS, HomeContext, WayContext
from core.auth import cookies, pages
from core.auth.oidc import OidcClient, OidcError, ProviderDown, Refused, decide, link_identity
from core.logs import event
from core.metrics.portal import FAILED, LOCKED_OUT

log = logging.getLogger("warren.portal")
routes = web.RouteTableDef()

COOKIE = cookies.OIDC  # the browser's half of a sign-in under way
FLOW_SECONDS = 600  # from the button to the callback: the provider's login and consent
CALLBACK = "/oidc/callback"
CLIENTS = web.AppKey("oidc_clients", dict[str, OidcClient])


def _portal(request: web.Request) -> Portal:
    return request.app[PORTAL]


def _client(request: web.Request, name: str) -> OidcClient | None:
    portal = _portal(request)
    provider = portal.settings.oidc.get(name)
    if provider is None:
        return None
    clients = request.app[CLIENTS]
    if name not in clients:  # one per provider: its discovery and keys are cached
        clients[name] = OidcClient(name, provider, portal.origin + CALLBACK)
    return clients[name]


def _flow_key(browser: str) -> str:
    return "oidc-flow:" + hashlib.sha256(browser.encode()).hexdigest()


def refusal(title: str, text: str, status: int) -> web.Response:
    return html(pages.notice(title, text, link=("Sign in to Warren", "/sign-in")), status)


def _down(client: OidcClient, error: OidcError) -> web.Response:
    log.warning("identity provider %s did not answer: %s", client.name, error)
    client.forget_discovery()  # the next try asks for the provider's metadata again
    return refusal(
        f"The identity provider {client.title} did not answer",
        "Nobody was signed in. Try again in a moment, or sign in another way.",
        502,
    )


@routes.get("/sign-in/oidc/{name}")
async def start(request: web.Request) -> web.Response:
    portal = _portal(request)
    client = _client(request, request.match_info["name"])
    if client is None:
        return refusal("No such identity provider", "Warren has none by that name.", 404)
    rd = request.query.get("rd") or None
    target = portal.target(rd)
    if rd and target is None:
        return refusal(
            "This sign-in link is not valid",
            "It leads to an address Warren does not protect, so Warren will not send you there.",
            400,
        )
    return await _begin(request, client, target.url if target is not None else None, None)


@routes.post("/sign-in/oidc/{name}/link")
async def start_link(request: web.Request) -> web.Response:
    """From the home page's form (a POST with the CSRF token: another site must not start
    linking in a signed-in browser)."""
    portal = _portal(request)
    client = _client(request, request.match_info["name"])
    if client is None:
        return refusal("No such identity provider", "Warren has none by that name.", 404)
    form = await request.post()
    if not portal.csrf_ok(request, str(form.get("csrf", ""))):
        return refusal("The form expired", "Nothing was changed. Please try again.", 403)
    who = await portal.signed_in(request)
    if who is None or not who.person.account:
        raise web.HTTPSeeOther("/sign-in")
    return await _begin(request, client, None, who.person.subject)


async def _begin(
    request: web.Request, client: OidcClient, rd: str | None, link: str | None
) -> web.Response:
    """Off to the provider, the flow's secrets kept under this browser's new cookie."""
    portal = _portal(request)
    try:
        authorization = await client.authorization()
    except ProviderDown as error:
        return _down(client, error)
    browser = secrets.token_urlsafe(32)
    flow = {
        "provider": client.name,
        "state": authorization.state,
        "nonce": authorization.nonce,
        "verifier": authorization.verifier,
        "rd": rd,
        "link": link,
    }
    if not await portal.kv.add(_flow_key(browser), json.dumps(flow), FLOW_SECONDS):
        raise web.HTTPServiceUnavailable(text="Please try again.")
    response = web.HTTPSeeOther(authorization.url)
    portal.set_cookie(response, COOKIE, browser, FLOW_SECONDS)
    raise response


async def _flow(request: web.Request) -> dict[str, Any] | None:
    """This browser's sign-in under way, taken (so never used twice), or None."""
    portal = _portal(request)
    browser = request.cookies.get(portal.cookie(COOKIE))
    if not browser or len(browser) > 100:
        return None
    stored = await portal.kv.take(_flow_key(browser))
    flow = json.loads(stored) if stored else None
    return flow if isinstance(flow, dict) else None


@routes.get(CALLBACK)
async def callback(request: web.Request) -> web.Response:
    try:
        return await _callback(request)
    except web.HTTPException as response:
        _portal(request).clear_cookie(response, COOKIE)
        raise


async def _callback(request: web.Request) -> web.Response:
    portal = _portal(request)
    address = portal.client_ip(request)
    flow = await _flow(request)
    name = str(flow["provider"]) if flow else "?"
    # Counted by client address only: a name shared by everyone ("oidc:NAME") would let one
    # client's failures lock the provider's button for all.
    regulated = f"oidc:{name}@{address}"
    lockout = await portal.regulation.locked(address, regulated)
    if lockout is not None:
        sign_in_outcome(
            request, LOCKED_OUT, user=f"oidc:{name}", client=address, **lockout_fields(lockout)
        )
        return _cleared(portal, refusal("Too many failed attempts", "Try again later.", 429))

    async def refused(why: str, text: str, status: int = 401) -> web.Response:
        await portal.regulation.failed(address, regulated)
        sign_in_outcome(request, FAILED, user=f"oidc:{name}", client=address, reason=why)
        return _cleared(portal, refusal("You were not signed in", text, status))

    state = request.query.get("state", "")
    if flow is None or not hmac.compare_digest(str(flow["state"]), state):
        return await refused(
            "state",
            "This answer from the identity provider does not belong to a sign-in this browser "
            "started (or it was used already, or it took too long). Please start again.",
            400,
        )
    client = _client(request, name)
    if client is None:  # the provider was removed from warren.yaml meanwhile
        return await refused("provider", "That identity provider is no longer configured.", 400)
    if "error" in request.query:  # OIDC Core §3.1.2.6: the person declined, or the provider did
        error = request.query["error"][:100]
        return await refused(f"provider:{error}", f"{client.title} said: {error}.")
    code = request.query.get("code", "")
    if not code or len(code) > 2000:
        return await refused("code", f"{client.title} sent no authorization code.", 400)
    try:
        verified = await client.exchange(code, str(flow["verifier"]), str(flow["nonce"]))
    except ProviderDown as error:
        return _cleared(portal, _down(client, error))
    except Refused as error:
        log.info("oidc sign-in through %s refused: %s", name, error)
        return await refused("id-token", f"{client.title}'s answer was not accepted: {error}.")
    target = portal.target(flow["rd"]) if isinstance(flow.get("rd"), str) else None
    if flow.get("link"):
        return await _link(request, client, str(flow["link"]), verified.subject)
    try:
        decision = decide(name, client.settings, verified, portal.users.current())
    except Refused as error:
        return await refused("not-allowed", f"{client.title} says who you are, but {error}.", 403)
    person = Person(
        decision.subject,
        decision.email,
        decision.groups,
        None if decision.account else f"oidc:{name}",
    )
    return await complete(request, portal, person, ["oidc"], target)


def _cleared(portal: Portal, response: web.Response) -> web.Response:
    portal.clear_cookie(response, COOKIE)
    return response


async def _link(request: web.Request, client: OidcClient, account: str, sub: str) -> web.Response:
    """Link the provider's user to the account that asked (still signed in as it)."""
    portal = _portal(request)
    who = await portal.signed_in(request)
    if who is None or who.person.subject != account or not who.person.account:
        return refusal("Not linked", "Sign in with your account first, then link again.", 403)
    try:
        await asyncio.to_thread(link_identity, portal.write_users, account, client.name, sub)
    except ValueError as error:
        return refusal("Not linked", str(error), 409)
    event(log, "oidc-linked", user=account, provider=client.name, subject=sub)
    raise web.HTTPSeeOther("/")


def buttons(ways: WayContext) -> str:
    """ "Sign in with <title>" for each provider, keeping where the person was going."""
    providers = ways.portal.settings.oidc
    if not providers:
        return ""
    query = f"?{urlencode({'rd': ways.rd})}" if ways.rd else ""
    links = "".join(
        f'<p><a class="button" href="/sign-in/oidc/{escape(name)}{escape(query)}">'
        f"Sign in with {escape(provider.label(name))}</a></p>"
        for name, provider in providers.items()
    )
    return f'<div class="ways oidc">{links}</div>'


def link_buttons(home: HomeContext) -> str:
    """On the home page of an account: "Link <title>" for each provider not linked yet."""
    forms = "".join(
        f'<form method="post" action="/sign-in/oidc/{escape(name)}/link">'
        f'<input type="hidden" name="csrf" value="{escape(home.csrf)}">'
        f'<button type="submit" class="secondary">Link {escape(provider.label(name))}</button>'
        "</form>"
        for name, provider in home.portal.settings.oidc.items()
        if name not in home.user.identities
    )
    return f'<div class="ways oidc-link">{forms}</div>' if forms else ""


def install(app: web.Application) -> None:
    """The routes, the providers' clients, and the buttons on the sign-in page."""
    app[CLIENTS] = {}
    app.add_routes(routes)
    if buttons not in WAYS:
        WAYS.append(buttons)
    if link_buttons not in HOME:
        HOME.append(link_buttons)
