"""Who is asking: a session cookie, a resource-password cookie, a share link, basic auth, an
app's bearer token, or a client certificate (mutual TLS, addons.clientcert).

Runs after the rules and before rate limiting, so `exchange.user` is known to per-user limits;
`addons.auth` then decides. A session's signature is checked once and remembered
(`core.auth.verifier`), and so is what a Cookie header carrying it comes to
(`core.auth.sessioncookies`); whether it was revoked is asked of the shared state on every
request, and the person's groups, e-mail and whether they may still sign in come from users.yaml
as it is now (`core.auth.users.current_identity`), not from the token.
"""

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from urllib.parse import parse_qsl, urlencode

from mitmproxy import http

from addons.clientcert import CertificateSignIn
from addons.exchange import Exchange
from addons.respond import redirect, refuse
from addons.signin import SignIn, browser, is_https
from core.auth import apptokens, cookies, sessions
from core.auth.identity import Identity
from core.auth.regulation import Lockout
from core.auth.tokens import TokenError, fingerprint
from core.auth.users import authenticate, current_identity
from core.paths import split_target
from core.policy.compiled import CompiledResource
from core.policy.rules import Outcome

log = logging.getLogger("warren.auth")

BASIC_CACHE_SECONDS = 300.0


class Identify:
    def __init__(self) -> None:
        self._basic: dict[str, tuple[float, Identity]] = {}
        self._tokens: TokenPeople = {}
        self._certificates = CertificateSignIn()  # mutual TLS (auth.client_ca)

    async def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        signin = exchange.runtime.signin
        identity = None
        cookie_header = flow.request.headers.get("cookie")
        if cookie_header is not None and "warren_" in cookie_header:
            identity = await _from_cookies(signin, flow, exchange, cookie_header)
        if (
            identity is None
            and exchange.resource.client_ca is not None
            and exchange.verdict.outcome is Outcome.SIGN_IN
        ):
            identity = self._certificates.identity(flow, exchange)
            if flow.response is not None:
                return  # refused: 421 or 403 (addons.clientcert)
        auth = exchange.resource.auth
        if (
            identity is None
            and auth is not None
            and auth.share_links
            and cookies.SHARE_PARAMETER in flow.request.path
        ):
            identity = await _from_share_link(signin, flow, exchange)
        if identity is None and flow.response is None:
            identity = await self._from_authorization(signin, flow, exchange)
        if identity is not None:
            exchange.identity = identity
            exchange.user = identity.subject if identity.method != "password" else None

    async def _from_authorization(
        self, signin: SignIn, flow: http.HTTPFlow, exchange: Exchange
    ) -> Identity | None:
        """Basic credentials where the resource takes them, or an app's bearer token."""
        if exchange.verdict.outcome is not Outcome.SIGN_IN:
            return None
        authorization = flow.request.headers.get("authorization")
        if authorization is None:
            return None
        scheme = _scheme(authorization)
        auth = exchange.resource.auth
        if scheme == "basic" and auth is not None and auth.basic_auth:
            return await self._from_basic(signin, flow, exchange)
        if scheme == "bearer" and not exchange.resource.public:
            return await _from_bearer(signin, flow, exchange, authorization, self._tokens)
        return None

    async def _from_basic(
        self, signin: SignIn, flow: http.HTTPFlow, exchange: Exchange
    ) -> Identity | None:
        credentials = _basic_credentials(flow.request.headers.get("authorization", ""))
        if credentials is None:
            return None
        name, password = credentials
        users = signin.users.current()
        digest = hashlib.sha256(
            f"{signin.users.generation}\0{name}\0{password}".encode()
        ).hexdigest()
        now = time.time()
        cached = self._basic.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        address = exchange.client.ip
        lockout = await signin.regulation.locked(address, name)
        if lockout is not None:
            _locked_out(flow, lockout, "failed sign-ins", "basic auth")
            return None
        user = await asyncio.to_thread(authenticate, users, name, password)
        if user is None:
            await signin.regulation.failed(address, name)
            log.info("basic auth for %r from %s refused: wrong name or password", name, address)
            return None
        if user.two_factor:
            log.info("basic auth for %r refused: the account uses two-step verification", name)
            return None
        identity = Identity(
            subject=name,
            method="basic",
            expires=now + BASIC_CACHE_SECONDS,
            email=user.email,
            groups=user.groups,
            issued_at=now,
        )
        if len(self._basic) > 10_000:
            self._basic.clear()
        self._basic[digest] = (now + BASIC_CACHE_SECONDS, identity)
        return identity


async def _from_cookies(
    signin: SignIn, flow: http.HTTPFlow, exchange: Exchange, header: str
) -> Identity | None:
    secure = is_https(flow, exchange.client)
    host = exchange.host
    name = signin.session_cookie(host, secure)
    identity = await signin.session_cookies.identity(signin.kv, header, name, host)
    if identity is not None:
        return identity
    token = cookies.read_cookie(header, cookies.cookie_name(cookies.PASSWORD, secure))
    if token is not None:
        by_password = _password_identity(signin, token, host, exchange.resource)
        if by_password is not None:
            return by_password
    token = cookies.read_cookie(header, cookies.cookie_name(cookies.SHARE, secure))
    if token is not None:
        return await _share_identity(signin, token, exchange.resource)
    return None


def _password_identity(
    signin: SignIn, token: str, host: str, resource: CompiledResource
) -> Identity | None:
    auth = resource.auth
    secret = auth.password_hash or auth.pin_hash if auth is not None else None
    if secret is None:
        return None
    try:
        verified = signin.verifier.check(token, "password", host)
    except TokenError:
        return None
    claims = verified.claims
    if claims.get("res") != resource.name or claims.get("pwv") != fingerprint(secret):
        return None  # another resource's, or the password changed since
    return verified.identity


async def _share_identity(
    signin: SignIn, token: str, resource: CompiledResource
) -> Identity | None:
    if resource.auth is None or not resource.auth.share_links:
        return None
    try:
        verified = signin.verifier.check(token, "share", "", audience=f"share:{resource.name}")
    except TokenError as error:
        log.info("share link for %s refused: %s", resource.name, error)
        return None
    identity = verified.identity
    if identity.session_id is None or await sessions.share_revoked(signin.kv, identity.session_id):
        log.info("share link %s for %s refused: revoked", identity.session_id, resource.name)
        return None
    return identity


async def _from_share_link(
    signin: SignIn, flow: http.HTTPFlow, exchange: Exchange
) -> Identity | None:
    path, query = split_target(flow.request.path)
    pairs = parse_qsl(query.removeprefix("?"), keep_blank_values=True)
    token = next((value for key, value in pairs if key == cookies.SHARE_PARAMETER), None)
    if token is None:
        return None
    identity = await _share_identity(signin, token, exchange.resource)
    if identity is None:
        refuse(
            flow,
            403,
            detail="This share link does not open this application: it expired, was revoked, "
            "or was made for another one.",
            reason="share link refused",
        )
        return None
    if browser(flow):
        # Trade the link for a cookie, and show the address without the token.
        secure = is_https(flow, exchange.client)
        rest = [(key, value) for key, value in pairs if key != cookies.SHARE_PARAMETER]
        redirect(
            flow,
            path + (f"?{urlencode(rest)}" if rest else ""),
            cookies=[
                cookies.set_cookie(
                    cookies.cookie_name(cookies.SHARE, secure),
                    token,
                    max_age=int(identity.expires - time.time()),
                    secure=secure,
                )
            ],
        )
    return identity


def _locked_out(flow: http.HTTPFlow, lockout: Lockout, what: str, why: str) -> None:
    """429 while regulation holds the client back (core.auth.regulation), saying for how long."""
    refuse(
        flow,
        429,
        detail=f"Too many {what}. Wait, then try again.",
        reason=f"{why} locked out by {lockout.reason}",
        headers={"retry-after": str(int(lockout.retry_after) + 1)},
    )


def _scheme(authorization: str) -> str:
    """The Authorization header's scheme, lower-cased (RFC 9110 §11.1: case-insensitive)."""
    return authorization.strip().partition(" ")[0].lower()


# A token's person as users.yaml says now, by token id and users.yaml's generation: built once,
# not on every request that brings the token (current_identity copies the identity, for the
# groups and e-mail the record does not carry). An id names one record for good: records are
# never rewritten (apptokens.create draws 64 random bits for each).
type TokenPeople = dict[tuple[str, int], Identity | None]


def _token_person(
    people: TokenPeople, signin: SignIn, record: apptokens.AppToken
) -> Identity | None:
    users = signin.users.current()  # first: it may notice a change and move the generation on
    key = (record.token_id, signin.users.generation)
    if key not in people:
        if len(people) > 10_000:
            people.clear()
        people[key] = current_identity(users, record.identity())
    return people[key]


async def _from_bearer(
    signin: SignIn,
    flow: http.HTTPFlow,
    exchange: Exchange,
    authorization: str,
    people: TokenPeople,
) -> Identity | None:
    """An app's token (core.auth.apptokens), or a 401 that says so (RFC 6750 §3): a request
    that brought a token is answered for that token, never sent on to the sign-in page. Refused
    tokens are counted per address like failed sign-ins; a good one never waits on the count."""
    resource = exchange.resource.name
    credentials = authorization.strip().partition(" ")[2]
    try:
        record = await apptokens.verify(signin.kv, credentials.strip(), resource)
    except apptokens.TokenRefused as error:
        why = str(error)
    else:
        identity = _token_person(people, signin, record)
        if identity is not None:
            return identity
        why = f"token {record.token_id}: {record.user} is deleted or disabled"
    address = exchange.client.ip
    await signin.regulation.failed(address, "")
    lockout = await signin.regulation.locked(address, "")
    if lockout is not None:
        _locked_out(flow, lockout, "refused tokens", f"bearer token refused ({why});")
        return None
    refuse(
        flow,
        401,
        detail="This token does not open this application: it expired, was revoked, or was "
        "made for another one.",
        reason=f"bearer token refused: {why}",
        # RFC 6750 §3: the scheme, the realm, and invalid_token for a token that opens nothing.
        headers={"www-authenticate": f'Bearer realm="{resource}", error="invalid_token"'},
    )
    return None


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _space, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, password = decoded.partition(":")
    return (name, password) if colon and name else None
