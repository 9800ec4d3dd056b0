"""Paths under /.warren/ belong to Warren on every resource host, answered before the rules:

- /.warren/callback?code=...  trades a one-time code from the portal for this host's cookie
- /.warren/logout             GET asks, POST signs out everywhere. SameSite=Lax keeps other
                              sites' POSTs from carrying the session, but not a sibling
                              subdomain's: the POST must also bring the CSRF token the page set
                              (`core.auth.csrf`), from this origin

The portal's own host is left alone: the portal answers its paths itself.
"""

import logging
import time
from urllib.parse import parse_qsl, quote, urlencode

from mitmproxy import http

from addons import siteapi
from addons.exchange import Exchange
from addons.respond import answer_page, redirect, refuse
from addons.signin import SignIn, is_https, request_host, request_origin
from core.auth import cookies, csrf, pages, sessions
from core.auth.redirects import safe_local_path
from core.auth.tokens import TokenError, Use
from core.paths import split_target

log = logging.getLogger("warren.auth")

PREFIX = "/.warren/"
CALLBACK = "/.warren/callback"
LOGOUT = "/.warren/logout"
CSRF_SECONDS = 3600  # the sign-out page's token; an older page is simply opened again


class Reserved:
    async def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        if not exchange.match_path.startswith(PREFIX) or exchange.resource.name == siteapi.NAME:
            return  # not Warren's, or the sites' registration API (addons.siteapi)
        signin = exchange.runtime.signin
        if request_host(flow) == signin.portal_host:
            return  # the portal's own /.warren/ paths
        if exchange.match_path == CALLBACK and flow.request.method == "GET":
            await _callback(signin, flow, exchange)
        elif exchange.match_path == LOGOUT and flow.request.method in ("GET", "HEAD"):
            _confirm_logout(flow, exchange)
        elif exchange.match_path == LOGOUT and flow.request.method == "POST":
            if _logout_forged(flow, exchange):
                return
            await _logout(signin, flow, exchange)
        else:
            refuse(flow, 404, detail="Nothing is served at this Warren address.", reason="reserved")


def _expired_link(signin: SignIn, flow: http.HTTPFlow, why: str) -> None:
    link = ("Sign in again", f"{signin.portal_url}/sign-in") if signin.portal_url else None
    answer_page(
        flow,
        400,
        pages.notice(
            "This sign-in link has expired",
            "Sign-in links work once, for a few seconds. Start again from the application.",
            link=link,
        ),
    )
    log.info("callback on %s refused: %s", flow.request.host_header, why)


async def _callback(signin: SignIn, flow: http.HTTPFlow, exchange: Exchange) -> None:
    _path, query = split_target(flow.request.path)
    code = dict(parse_qsl(query.removeprefix("?"))).get("code", "")
    grant = await sessions.redeem_code(signin.kv, code)
    accepted = _accept(signin, grant, request_host(flow))
    if isinstance(accepted, str):
        _expired_link(signin, flow, accepted)
        return
    landing, cookie = accepted
    redirect(flow, landing, cookies=[cookie])


def _accept(signin: SignIn, grant: sessions.CodeGrant | None, host: str) -> tuple[str, str] | str:
    """Where to land and the cookie to set, or why the code is refused."""
    if grant is None:
        return "unknown, used or expired code"
    if grant.host != host:
        return f"a code for {grant.host}"
    landing = safe_local_path(grant.path)
    if landing is None or grant.use not in ("session", "password"):
        return "unsafe landing path or unknown grant"
    use: Use = "session" if grant.use == "session" else "password"
    try:
        verified = signin.verifier.check(grant.token, use, host)
    except TokenError as error:
        return f"token refused: {error}"
    domain = signin.session_domain(host) if use == "session" else None
    if verified.audience != (domain or host):
        return f"a token for {verified.audience}"
    base = cookies.SESSION if use == "session" else cookies.PASSWORD
    cookie = cookies.set_cookie(
        cookies.cookie_name(base, grant.secure, domain),
        grant.token,
        max_age=int(verified.identity.expires - time.time()),
        secure=grant.secure,
        domain=domain,
    )
    return landing, cookie


def _csrf_cookie(flow: http.HTTPFlow, exchange: Exchange) -> str:
    return cookies.cookie_name(cookies.CSRF, is_https(flow, exchange.client))


def _confirm_logout(flow: http.HTTPFlow, exchange: Exchange) -> None:
    """The page that asks, with the token its form must bring back. The token rides in the
    form's address, not its body: this hook sees the request before the body has arrived."""
    name = _csrf_cookie(flow, exchange)
    token = cookies.read_cookie(flow.request.headers.get("cookie"), name)
    fresh = []
    if token is None or not csrf.usable(token):
        token = csrf.new_token()
        secure = is_https(flow, exchange.client)
        fresh.append(
            cookies.set_cookie(name, token, max_age=CSRF_SECONDS, secure=secure, same_site="Strict")
        )
    action = f"{LOGOUT}?{urlencode({'csrf': token})}"
    answer_page(flow, 200, pages.confirm_sign_out(action=action, csrf=None), cookies=fresh)


def _logout_forged(flow: http.HTTPFlow, exchange: Exchange) -> bool:
    """Refuse (403, nothing changed) a sign-out that is not this page's own form."""
    _path, query = split_target(flow.request.path)
    submitted = dict(parse_qsl(query.removeprefix("?"))).get("csrf", "")
    headers = flow.request.headers
    why = csrf.refusal(
        origin=headers.get("origin"),
        expected_origin=request_origin(flow, exchange.client),
        fetch_site=headers.get("sec-fetch-site"),
        cookie=cookies.read_cookie(headers.get("cookie"), _csrf_cookie(flow, exchange)),
        submitted=submitted,
    )
    if why is None:
        return False
    refuse(
        flow,
        403,
        detail="This sign-out did not come from Warren's sign-out page, or the page expired. "
        f"Nothing was changed; to sign out, open {LOGOUT} and confirm.",
        reason=f"sign-out refused: {why}",
    )
    return True


async def _logout(signin: SignIn, flow: http.HTTPFlow, exchange: Exchange) -> None:
    secure = is_https(flow, exchange.client)
    host = request_host(flow)
    header = flow.request.headers.get("cookie", "")
    token = cookies.read_cookie(header, signin.session_cookie(host, secure))
    if token is not None:
        try:
            identity = signin.verifier.check(token, "session", host).identity
        except TokenError:
            identity = None
        if identity is not None and identity.session_id is not None:
            await sessions.revoke_session(signin.kv, identity.session_id, identity.expires)
            log.info(
                "%s signed out on %s (session %s)", identity.subject, host, identity.session_id
            )
    cleared = [
        cookies.clear_cookie(
            signin.session_cookie(host, secure), secure=secure, domain=signin.session_domain(host)
        ),
        cookies.clear_cookie(cookies.cookie_name(cookies.PASSWORD, secure), secure=secure),
        cookies.clear_cookie(cookies.cookie_name(cookies.SHARE, secure), secure=secure),
        cookies.clear_cookie(cookies.cookie_name(cookies.CSRF, secure), secure=secure),
    ]
    if signin.portal_url is None:
        answer_page(flow, 200, pages.signed_out(sign_in_url="/"), cookies=cleared)
        return
    back = f"{'https' if secure else 'http'}://{flow.request.host_header}/"
    redirect(
        flow,
        f"{signin.portal_url}/signed-out?rd={quote(back, safe='')}",
        cookies=cleared,
        status=303,
    )
