"""What the portal knows: settings, keys, shared state, users, the policy (for redirect targets)."""

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import typer
from aiohttp import web

from core.auth import cookies, csrf, sessions
from core.auth.identity import Identity
from core.auth.redirects import RedirectTarget, safe_target
from core.auth.services import OnSignInServices, SignInServices
from core.auth.tokens import TokenError, Use, mint, new_id, verify
from core.auth.users import User, UsersChange, active_user
from core.auth.verifier import audiences, identity_of
from core.clientip import ForwardingError, ProxyTrust, peer_address
from core.ipsets import IPAddress
from core.policy.check import node_capabilities
from core.policy.store import PolicyStore
from core.settings import Settings

log = logging.getLogger("warren.portal")

PENDING_SECONDS = 300  # between the password and the second factor


@dataclass(slots=True)
class Portal(OnSignInServices):
    settings: Settings
    origin: str  # public_url, e.g. https://auth.example.com
    host: str
    https: bool
    services: SignInServices  # what the gateway signs in with too (core.auth.services)
    policy: PolicyStore
    trust: ProxyTrust
    ports: frozenset[int]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Portal":
        if settings.public_url is None:
            raise ValueError("the portal needs public_url in warren.yaml (where it is reached)")
        parts = urlsplit(settings.public_url)
        ports = {settings.listen.port}
        if parts.port is not None:
            ports.add(parts.port)
        return cls(
            settings=settings,
            origin=settings.public_url,
            host=parts.hostname or "",
            https=parts.scheme == "https",
            services=SignInServices.open(settings, users_on_every_use=True),
            policy=PolicyStore(settings.policy_file, node_capabilities(settings)),
            trust=ProxyTrust(settings.portal.trusted_proxies),
            ports=frozenset(ports),
        )

    def write_users(self, change: UsersChange) -> None:
        """users.yaml changed by a sign-in (a linked identity, a passkey, a spent recovery
        code) the way `warren user` changes it: with shared storage, pushed to every node, so
        what one node's portal wrote every node decides by. Blocking: call it in a thread.
        ValueError when the change is refused or the file cannot be written."""
        from authportal import manage

        try:
            manage.change_users(self.settings, change)
        except manage.Refused as refused:
            raise ValueError(str(refused)) from None
        except typer.Exit:  # written here, pushed nowhere: core.cluster.push said why
            log.error("users.yaml changed on this node only; run: warren users push")

    @property
    def session_seconds(self) -> float:
        return self.settings.session.ttl.total_seconds()

    def cookie(self, base: str) -> str:
        return cookies.cookie_name(base, self.https)

    def set_cookie(self, response: web.StreamResponse, base: str, value: str, seconds: int) -> None:
        response.headers.add(
            "Set-Cookie",
            cookies.set_cookie(
                self.cookie(base),
                value,
                max_age=seconds,
                secure=self.https,
                same_site="Strict" if base == cookies.CSRF else "Lax",
            ),
        )

    def clear_cookie(self, response: web.StreamResponse, base: str) -> None:
        response.headers.add(
            "Set-Cookie", cookies.clear_cookie(self.cookie(base), secure=self.https)
        )

    def client_ip(self, request: web.Request) -> IPAddress:
        peer = peer_address(request.remote or "0.0.0.0")
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        try:
            return self.trust.resolve(peer, forwarded, None).ip
        except ForwardingError:
            return peer

    def target(self, rd: str | None) -> RedirectTarget | None:
        if not rd:
            return None
        return safe_target(rd, self.policy.current, self.ports, https_only=self.https)

    def token(self, request: web.Request, base: str, use: Use) -> dict[str, Any] | None:
        value = request.cookies.get(self.cookie(base))
        if not value:
            return None
        try:
            return verify(self.keys, value, use=use, issuer=self.origin, audience=self.host)
        except TokenError:
            return None

    async def signed_in(self, request: web.Request) -> "SignedIn | None":
        claims = self.token(request, cookies.PORTAL, "portal")
        if claims is None:
            return None
        try:
            identity = identity_of("session", claims)
        except TokenError:
            return None
        if identity.provider is not None:  # nobody's account: the token says who
            person = Person(
                identity.subject,
                identity.email,
                identity.groups,
                identity.provider,
                identity.email_verified,
            )
        else:
            user = active_user(self.users.current(), identity.subject)
            if user is None:
                return None
            person = Person.of_account(identity.subject, user)
        if await sessions.revoked(
            self.kv, identity.session_id, identity.subject, identity.issued_at
        ):
            return None
        return SignedIn(identity, person, claims)

    def csrf(self, request: web.Request) -> tuple[str, bool]:
        """The form token, and whether it is new (and so must be set as a cookie)."""
        existing = request.cookies.get(self.cookie(cookies.CSRF))
        if existing is not None and csrf.usable(existing):
            return existing, False
        return csrf.new_token(), True

    def csrf_ok(self, request: web.Request, submitted: str) -> bool:
        why = csrf.refusal(
            origin=request.headers.get("Origin"),
            expected_origin=self.origin,
            fetch_site=request.headers.get("Sec-Fetch-Site"),
            cookie=request.cookies.get(self.cookie(cookies.CSRF)),
            submitted=submitted,
        )
        if why is None:
            return True
        log.info("form %s refused: %s", request.path, why)
        return False

    async def code_for(self, target: RedirectTarget, use: str, token: str) -> str:
        grant = sessions.CodeGrant(target.host, token, use, target.path, target.secure)
        code = await sessions.issue_code(self.kv, grant)
        return f"{target.scheme}://{target.authority}/.warren/callback?code={quote(code)}"

    async def portal_session(
        self, person: "Person", amr: list[str], address: IPAddress
    ) -> tuple[str, "SignedIn"]:
        """The portal's own cookie for a fresh sign-in, and who it stands for; the sign-in is
        recorded in the shared state first, so `warren sessions` sees it."""
        now = time.time()
        sid = new_id()
        name = person.subject
        claims: dict[str, Any] = {"sid": sid, "amr": amr, "auth_time": now, **person.claims()}
        await sessions.record_sign_in(
            self.kv,
            sessions.SignInRecord(
                sid, name, now, int(now) + int(self.session_seconds), tuple(amr), str(address)
            ),
        )
        token = mint(
            self.keys,
            use="portal",
            issuer=self.origin,
            audience=self.host,
            subject=name,
            lifetime=self.session_seconds,
            claims=claims,
            now=now,
        )
        claims.update(sub=name, iat=int(now), exp=int(now) + int(self.session_seconds))
        return token, SignedIn(identity_of("session", claims), person, claims)

    def resource_session(self, who: "SignedIn", target: RedirectTarget) -> str:
        """A session for one resource host (or the shared cookie domain): the same sign-in (its
        id, so signing out ends both), ending with the portal's, with the user's current
        e-mail and groups."""
        domain = self.settings.session.cookie_domain
        audience = domain if domain and len(audiences(target.host, domain)) > 1 else target.host
        claims: dict[str, Any] = {
            key: who.claims[key] for key in ("sid", "amr", "auth_time") if key in who.claims
        }
        claims.update(who.person.claims())
        return mint(
            self.keys,
            use="session",
            issuer=self.origin,
            audience=audience,
            subject=who.identity.subject,
            lifetime=max(1.0, who.identity.expires - time.time()),
            claims=claims,
        )


@dataclass(frozen=True, slots=True)
class Person:
    """Whom a sign-in is for: a users.yaml account (as the file says now), or someone without
    one (an identity provider's user, an e-mail code), whose token says who they are."""

    subject: str
    email: str | None
    groups: tuple[str, ...]
    provider: str | None = None  # None: an account; "oidc:NAME" or "email" otherwise
    email_verified: bool = True

    @classmethod
    def of_account(cls, name: str, user: User) -> "Person":
        return cls(name, user.email, user.groups)

    @property
    def account(self) -> bool:
        return self.provider is None

    def claims(self) -> dict[str, Any]:
        """What a session token says of the person (core.auth.verifier.identity_of reads it)."""
        claims: dict[str, Any] = {"groups": list(self.groups)}
        if self.email:
            claims["email"] = self.email
            if not self.email_verified:
                claims["email_verified"] = False
        if self.provider is not None:
            claims["idp"] = self.provider
        return claims


@dataclass(frozen=True, slots=True)
class SignedIn:
    identity: Identity
    person: Person
    claims: dict[str, Any]


PORTAL = web.AppKey("portal", Portal)
