"""What the portal knows: settings, keys, shared state, users, the policy (for redirect targets)."""

import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from core.auth import cookies, sessions
from core.auth.identity import Identity
from core.auth.keys import KeyRing
from core.auth.kv import KeyValue, open_kv
from core.auth.redirects import Target, safe_target
from core.auth.regulation import Regulation, parse_tiers
from core.auth.tokens import TokenError, Use, mint, new_id, verify
from core.auth.users import User, UsersSource
from core.auth.verifier import audiences, identity_of
from core.clientip import ForwardingError, ProxyTrust, peer_address
from core.ipsets import IPAddress
from core.policy.check import node_capabilities
from core.settings import Settings
from core.storage import open_storage
from core.store import PolicyStore

log = logging.getLogger("warren.portal")

PENDING_SECONDS = 300  # between the password and the second factor


@dataclass(slots=True)
class Portal:
    settings: Settings
    origin: str  # public_url, e.g. https://auth.example.com
    host: str
    https: bool
    keys: KeyRing
    kv: KeyValue
    users: UsersSource
    regulation: Regulation
    policy: PolicyStore
    trust: ProxyTrust
    ports: frozenset[int]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Portal":
        if settings.public_url is None:
            raise ValueError("the portal needs public_url in warren.yaml (where it is reached)")
        parts = urlsplit(settings.public_url)
        keys = KeyRing(settings.state_dir / "keys")
        keys.ensure()
        ports = {settings.listen.port}
        if parts.port is not None:
            ports.add(parts.port)
        return cls(
            settings=settings,
            origin=settings.public_url,
            host=parts.hostname or "",
            https=parts.scheme == "https",
            keys=keys,
            kv=open_kv(settings.storage, settings.state_dir),
            users=UsersSource(settings.users_file),
            regulation=Regulation(
                open_storage(settings.storage),
                parse_tiers(settings.regulation.per_user),
                parse_tiers(settings.regulation.per_ip),
            ),
            policy=PolicyStore(settings.policy_file, node_capabilities(settings)),
            trust=ProxyTrust(settings.portal.trusted_proxies, cloudflare=False),
            ports=frozenset(ports),
        )

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

    def target(self, rd: str | None) -> Target | None:
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
        identity = identity_of("session", claims)
        user = self.users.current().users.get(identity.subject)
        if user is None or await sessions.revoked(
            self.kv, identity.session_id, identity.subject, identity.issued_at
        ):
            return None
        return SignedIn(identity, user, claims)

    def csrf(self, request: web.Request) -> tuple[str, bool]:
        """The form token, and whether it is new (and so must be set as a cookie)."""
        existing = request.cookies.get(self.cookie(cookies.CSRF))
        if existing and 20 <= len(existing) <= 100:
            return existing, False
        return secrets.token_urlsafe(32), True

    def csrf_ok(self, request: web.Request, submitted: str) -> bool:
        origin = request.headers.get("Origin")
        expected = request.cookies.get(self.cookie(cookies.CSRF), "")
        if origin is not None and origin != self.origin:
            why = f"from origin {origin[:100]!r}"
        elif request.headers.get("Sec-Fetch-Site") == "cross-site":
            why = "a cross-site request"
        elif not expected:
            why = "no CSRF cookie"
        elif not hmac.compare_digest(expected.encode(), submitted.encode()):
            why = "the CSRF token does not match"
        else:
            return True
        log.info("form %s refused: %s", request.path, why)
        return False

    async def code_for(self, target: Target, use: str, token: str) -> str:
        grant = sessions.CodeGrant(target.host, token, use, target.path, target.secure)
        code = await sessions.issue_code(self.kv, grant)
        return f"{target.scheme}://{target.authority}/.warren/callback?code={quote(code)}"

    def portal_session(self, name: str, user: User, amr: list[str]) -> tuple[str, "SignedIn"]:
        """The portal's own cookie for a fresh sign-in, and who it stands for."""
        now = time.time()
        claims: dict[str, Any] = {"sid": new_id(), "amr": amr, "auth_time": now}
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
        return token, SignedIn(identity_of("session", claims), user, claims)

    def resource_session(self, who: "SignedIn", target: Target) -> str:
        """A session for one resource host (or the shared cookie domain): the same sign-in (its
        id, so signing out ends both), ending with the portal's, with the user's current
        e-mail and groups."""
        domain = self.settings.session.cookie_domain
        audience = domain if domain and len(audiences(target.host, domain)) > 1 else target.host
        claims: dict[str, Any] = {
            key: who.claims[key] for key in ("sid", "amr", "auth_time") if key in who.claims
        }
        claims["groups"] = list(who.user.groups)
        if who.user.email:
            claims["email"] = who.user.email
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
class SignedIn:
    identity: Identity
    user: User
    claims: dict[str, Any]


PORTAL = web.AppKey("portal", Portal)
