"""Signing in through an OpenID Connect provider (authorization code flow with PKCE): the
provider's discovery document and keys, the authorization URL, the code exchange, the ID token's
checks (OIDC Core 1.0 §3.1.3.7), and who the provider's user is to Warren.

Authlib makes the PKCE challenge, joserfc (Authlib's JOSE library) verifies signatures and
claims; nothing here parses a JWS by hand. Every call to the provider has a timeout; a provider
that is down or answers garbage is a `ProviderDown`, never a sign-in."""

import asyncio
import hmac
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from core.auth.users import UsersFile, UsersWriter
from core.signinsettings import OidcProvider

TIMEOUT_SECONDS = 5.0  # each request to the provider
DISCOVERY_SECONDS = 3600.0  # the discovery document is fetched again after this (or a failure)
JWKS_REFETCH_SECONDS = 60.0  # an unknown kid fetches the keys again at most this often
LEEWAY_SECONDS = 60  # clock skew allowed on exp and iat
# Asymmetric algorithms only: a provider's HS256 would sign with the client secret, which the
# client holds too; "none" is never accepted (OIDC Core §3.1.3.7 items 6-8).
_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
_ALGORITHMS |= {"ES512", "EdDSA"}


class OidcError(Exception):
    """A sign-in through the provider that did not happen; the message is for the person."""


class ProviderDown(OidcError):
    """The provider could not be reached, timed out, or answered something unusable."""


class Refused(OidcError):
    """The provider answered, but what it said does not sign anybody in."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """Where the browser goes, and what its callback must match (kept by the portal)."""

    url: str
    state: str
    nonce: str
    verifier: str  # the PKCE code_verifier (RFC 7636 §4.1)


@dataclass(frozen=True, slots=True)
class Verified:
    """The ID token's claims, checked."""

    subject: str
    email: str | None  # only when the provider says it is verified
    groups: tuple[str, ...]  # Warren's groups, through the provider's mapping
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whom a verified provider user signs in as: an account, or someone with none."""

    subject: str  # the account's name, or "PROVIDER:SUB"
    account: bool
    email: str | None
    groups: tuple[str, ...]


class OidcClient:
    """One provider, as a relying party with a confidential client."""

    def __init__(
        self,
        name: str,
        settings: OidcProvider,
        redirect_uri: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = -JWKS_REFETCH_SECONDS
        self._lock = asyncio.Lock()

    @property
    def title(self) -> str:
        return self.settings.label(self.name)

    def _http(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self.settings.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(self.settings.ca_bundle))
        return httpx.AsyncClient(timeout=TIMEOUT_SECONDS, verify=verify, follow_redirects=False)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ProviderDown(f"{url}: {type(error).__name__}: {error}") from error
        if not isinstance(body, dict):
            raise ProviderDown(f"{url}: not a JSON object")
        return body

    async def discovery(self) -> dict[str, Any]:
        """The provider's metadata (OIDC Discovery 1.0 §4), cached; its issuer must be the
        configured one exactly (§4.3), else an impostor's document could name its own keys."""
        async with self._lock:
            fresh = self._clock() - self._discovered_at < DISCOVERY_SECONDS
            if self._discovery is not None and fresh:
                return self._discovery
            issuer = self.settings.issuer
            document = await self._get_json(
                issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            if document.get("issuer") != issuer:
                raise ProviderDown(f"discovery names issuer {document.get('issuer')!r}")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(field), str):
                    raise ProviderDown(f"discovery has no {field}")
            self._discovery, self._discovered_at = document, self._clock()
            return document

    def forget_discovery(self) -> None:
        """After a failure: the next sign-in asks the provider again."""
        self._discovery = None

    async def _key_set(self, refresh: bool) -> KeySet:
        now = time.monotonic()
        if self._keys is not None and not (refresh and now - self._keys_at >= JWKS_REFETCH_SECONDS):
            return self._keys
        document = await self.discovery()
        body = await self._get_json(document["jwks_uri"])
        try:
            self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise ProviderDown(f"the provider's keys are not a JWKS: {error}") from error
        self._keys_at = now
        return self._keys

    async def authorization(self) -> Authorization:
        """A fresh state, nonce and PKCE verifier, and the URL that carries them."""
        document = await self.discovery()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 §4.1 wants 43-128
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = document["authorization_endpoint"]
        joiner = "&" if "?" in endpoint else "?"
        return Authorization(f"{endpoint}{joiner}{urlencode(query)}", state, nonce, verifier)

    async def exchange(self, code: str, verifier: str, nonce: str) -> Verified:
        """The code for tokens at the token endpoint (client_secret_basic, RFC 6749 §4.1.3),
        then the ID token checked."""
        document = await self.discovery()
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        auth = httpx.BasicAuth(self.settings.client_id, self.settings.secret())
        try:
            async with self._http() as client:
                response = await client.post(
                    document["token_endpoint"],
                    data=data,
                    auth=auth,
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as error:
            self.forget_discovery()
            raise ProviderDown(f"token endpoint: {type(error).__name__}: {error}") from error
        try:
            body = response.json()
        except ValueError:
            raise ProviderDown(
                f"token endpoint answered {response.status_code}, not JSON"
            ) from None
        if not isinstance(body, dict):
            raise ProviderDown("token endpoint answered something that is not a JSON object")
        if response.status_code != 200:
            # RFC 6749 §5.2: a used, expired or unknown code; nothing to retry.
            raise Refused(f"the provider refused the code: {body.get('error', '?')}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise Refused("the provider sent no ID token")
        return await self.verify(id_token, nonce)

    async def verify(self, id_token: str, nonce: str) -> Verified:
        """OIDC Core 1.0 §3.1.3.7: signature by a key of the provider's JWKS with an
        asymmetric algorithm it allows, iss exactly the issuer, aud containing client_id, azp
        client_id when there are several audiences (or azp given), exp in the future, iat
        present, and the nonce this browser was sent with."""
        document = await self.discovery()
        allowed = _ALGORITHMS & set(
            document.get("id_token_signing_alg_values_supported") or ["RS256"]
        )
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(False), algorithms=allowed)
            except InvalidKeyIdError:  # the provider rotated its keys: fetch them again
                token = jwt.decode(id_token, await self._key_set(True), algorithms=allowed)
        except ProviderDown:
            raise
        except (JoseError, ValueError, TypeError) as error:
            raise Refused(f"the ID token's signature is not the provider's: {error}") from error
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise Refused(f"the ID token is not for this sign-in: {error}") from error
        audience = claims["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if (several or "azp" in claims) and claims.get("azp") != self.settings.client_id:
            raise Refused("the ID token was issued to another party (azp)")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise Refused("the ID token's nonce is not this sign-in's (a replayed token?)")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Refused("the ID token has no usable subject")
        return Verified(subject, verified_email(claims), self.groups_of(claims), claims)

    def groups_of(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The provider's groups through `groups`; a group not mapped is dropped, so the
        provider never names a Warren group by accident."""
        given = claims.get(self.settings.groups_claim)
        if isinstance(given, str):
            given = [given]
        if not isinstance(given, list):
            return ()
        mapping = self.settings.groups
        mapped = (mapping[group] for group in given if isinstance(group, str) and group in mapping)
        return tuple(dict.fromkeys(mapped))


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The e-mail address, only when the provider vouches for it (OIDC Core §5.1)."""
    email = claims.get("email")
    if claims.get("email_verified") is not True or not isinstance(email, str) or "@" not in email:
        return None
    return email.strip().lower()


def linked_account(users: UsersFile, provider: str, subject: str) -> str | None:
    """The users.yaml account linked to the provider's subject (never found by e-mail)."""
    for name, user in users.users.items():
        if user.identities.get(provider) == subject:
            return name
    return None


def decide(name: str, settings: OidcProvider, verified: Verified, users: UsersFile) -> Decision:
    """An account linked by `identities: {NAME: sub}` signs in as itself (its groups from
    users.yaml); anybody else only with a verified e-mail address on the provider's allow list,
    as "NAME:SUB" with the mapped groups."""
    account = linked_account(users, name, verified.subject)
    if account is not None:
        user = users.users[account]
        if user.disabled:  # never on as someone else instead: the admin meant "not this one"
            raise Refused(f"the account {account} is disabled")
        return Decision(account, True, user.email, user.groups)
    email = verified.email
    if email is None:
        raise Refused("this account is not linked, and the provider has not verified its e-mail")
    domain = email.rpartition("@")[2]
    if email not in settings.allow_emails and domain not in settings.allow_domains:
        raise Refused(f"{email} may not sign in here")
    return Decision(f"{name}:{verified.subject}", False, email, verified.groups)


def link_identity(write: UsersWriter, account: str, provider: str, sub: str) -> None:
    """users.yaml: `identities[provider] = sub` for the account; refused (ValueError) when
    that subject signs in as another account already (one provider user, one account)."""

    def change(users: UsersFile) -> UsersFile:
        user = users.users.get(account)
        if user is None:
            raise ValueError(f"there is no account {account}")
        for other, them in users.users.items():
            if other != account and them.identities.get(provider) == sub:
                raise ValueError(f"that {provider} user is linked to the account {other}")
        identities = {**user.identities, provider: sub}
        changed = user.model_copy(update={"identities": identities})
        return users.model_copy(update={"users": {**users.users, account: changed}})

    write(change)


def unlink_identity(write: UsersWriter, account: str, provider: str) -> bool:
    """users.yaml without the account's link to the provider; False when there was none."""
    found = False

    def change(users: UsersFile) -> UsersFile:
        nonlocal found
        user = users.users.get(account)
        if user is None:
            raise ValueError(f"there is no account {account}")
        found = provider in user.identities
        identities = {k: v for k, v in user.identities.items() if k != provider}
        changed = user.model_copy(update={"identities": identities})
        return users.model_copy(update={"users": {**users.users, account: changed}})

    write(change)
    return found
