"""The gateway's sign-in state, shared by the features that need it (reserved paths, identity,
authentication, upstream): signing keys, the shared state, the verified-token cache."""

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from mitmproxy import http

from core.auth import cookies
from core.auth.identity import Identity
from core.auth.services import OnSignInServices, SignInServices
from core.auth.sessioncookies import SessionCookies
from core.auth.tokens import mint
from core.auth.verifier import Verifier, audiences
from core.clientip import ClientAddress
from core.forwarding import ASSERTION_HEADER
from core.hosts import normalise_host
from core.settings import Settings

ASSERTION_SECONDS = 60
_ASSERTION_REUSE_SECONDS = 30  # reissued when less than this is left


@dataclass(slots=True)
class SignIn(OnSignInServices):
    settings: Settings
    services: SignInServices  # what the portal signs in with too (core.auth.services)
    verifier: Verifier
    portal_url: str | None
    portal_host: str | None
    session_cookies: SessionCookies  # a Cookie header's session, remembered by the header
    _assertions: OrderedDict[
        tuple[str, str | None, str, int], tuple[float, tuple[tuple[bytes, bytes], ...]]
    ] = field(default_factory=OrderedDict)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SignIn":
        services = SignInServices.open(settings)
        verifier = Verifier(services.keys, services.issuer, settings.session.cookie_domain)
        return cls(
            settings=settings,
            services=services,
            verifier=verifier,
            portal_url=settings.public_url,
            portal_host=urlsplit(settings.public_url).hostname if settings.public_url else None,
            session_cookies=SessionCookies(verifier, services.users),
        )

    @property
    def issuer(self) -> str:
        return self.services.issuer

    @property
    def cookie_domain(self) -> str | None:
        return self.settings.session.cookie_domain

    def session_domain(self, host: str) -> str | None:
        """The Domain of `host`'s session cookie: the shared one when the host is under it."""
        domain = self.cookie_domain
        return domain if domain is not None and len(audiences(host, domain)) > 1 else None

    def session_cookie(self, host: str, secure: bool) -> str:
        return cookies.cookie_name(cookies.SESSION, secure, self.session_domain(host))

    def sign_in_url(self, return_to: str) -> str | None:
        if self.portal_url is None:
            return None
        return f"{self.portal_url}/sign-in?rd={quote(return_to, safe='')}"

    def identity_headers(self, identity: Identity, host: str) -> tuple[tuple[bytes, bytes], ...]:
        """Remote-User, Remote-Email, Remote-Groups and the signed assertion, as header fields;
        made once and reused while the assertion has 30 s to live, or until users.yaml changes
        (the identity carries the groups and e-mail it says now)."""
        key = (identity.subject, identity.session_id, host, self.users.generation)
        now = time.time()
        cached = self._assertions.get(key)
        if cached is not None and cached[0] - now > _ASSERTION_REUSE_SECONDS:
            return cached[1]
        fields: list[tuple[bytes, bytes]] = []
        if identity.method == "certificate":  # an app: "cert:NAME", no e-mail or groups
            fields.append((b"Remote-User", identity.subject.encode()))
        if identity.user is not None:
            fields.append((b"Remote-User", identity.user.encode()))
            if identity.email:
                fields.append((b"Remote-Email", identity.email.encode()))
            fields.append((b"Remote-Groups", ",".join(identity.groups).encode()))
        fields.append((ASSERTION_HEADER, self._assertion(identity, host, now).encode()))
        made = tuple(fields)
        self._assertions[key] = (now + ASSERTION_SECONDS, made)
        if len(self._assertions) > 20_000:
            self._assertions.popitem(last=False)
        return made

    def _assertion(self, identity: Identity, host: str, now: float) -> str:
        claims: dict[str, object] = {"auth_method": identity.method}
        if identity.amr:
            claims["amr"] = list(identity.amr)  # RFC 8176: how the person signed in
        if identity.provider is not None:
            claims["idp"] = identity.provider
        if identity.user is not None:
            claims["groups"] = list(identity.groups)
            if identity.email:
                claims["email"] = identity.email
                claims["email_verified"] = identity.email_verified
        return mint(
            self.keys,
            use="assertion",
            issuer=self.issuer,
            audience=host,
            subject=identity.subject,
            lifetime=ASSERTION_SECONDS,
            claims=claims,
            now=now,
        )


def request_host(flow: http.HTTPFlow) -> str:
    return normalise_host(flow.request.host_header or "")


def is_https(flow: http.HTTPFlow, client: ClientAddress) -> bool:
    """Whether the browser speaks https: TLS to us, or to a trusted proxy that says so."""
    if flow.client_conn.tls_established:
        return True
    return client.via != "peer" and flow.request.headers.get("x-forwarded-proto") == "https"


def request_origin(flow: http.HTTPFlow, client: ClientAddress) -> str:
    """scheme://host[:port] of the request, as the browser sees it (and writes its Origin)."""
    authority = (flow.request.host_header or "").strip().lower()
    host = normalise_host(authority)
    _name, colon, port = authority.rpartition(":")
    suffix = f":{port}" if colon and port.isdigit() and not authority.endswith("]") else ""
    scheme = "https" if is_https(flow, client) else "http"
    return f"{scheme}://{host}{suffix}"


def original_url(flow: http.HTTPFlow, client: ClientAddress) -> str:
    return request_origin(flow, client) + flow.request.path


def browser(flow: http.HTTPFlow) -> bool:
    """A person at a browser, who can be sent to a page; everyone else gets a status code."""
    accept = flow.request.headers.get("accept", "")
    return flow.request.method in ("GET", "HEAD") and (
        "text/html" in accept or "application/xhtml" in accept
    )
