"""Warren's tokens: JWTs signed with the key ring, one `use` per purpose, every claim checked.

Uses: `portal` (the portal's own sign-in), `session` (a resource host's sign-in), `password`
(a resource password or PIN was entered), `share` (a share link), `assertion` (what the
application receives), `pending` (password accepted, second factor still to come), `relay` (a
node carries a request it decided to another node: core.cluster.relay), `email` (a code was
e-mailed, to be typed in the browser that asked: authportal.emailcode). A token made
for one use is refused for every other, so an assertion an application received can never be
replayed to the gateway as a session.
"""

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.auth.signing import ALGORITHM, KeyRing

type Use = Literal[
    "portal", "session", "password", "share", "assertion", "pending", "relay", "email"
]


class PublicKeys(Protocol):
    """Where verification finds a kid's key: a KeyRing, or the keys other nodes published."""

    def public_key(self, kid: str) -> Ed25519PublicKey | None: ...


LEEWAY_SECONDS = 5  # clocks of nodes that share keys drift a little
MAX_TOKEN_BYTES = 8192
REQUIRED = ["exp", "iat", "iss", "aud", "sub"]


NO_PORTAL_ISSUER = "urn:warren:no-portal"


def issuer_for(public_url: str | None) -> str:
    """Tokens are issued in the portal's name; a node without a portal still signs share links."""
    return public_url or NO_PORTAL_ISSUER


class TokenError(ValueError):
    """The token is not one Warren made for this purpose, place and time."""


class UnknownKey(TokenError):
    """Signed with a kid no key here has: perhaps one another node has just published."""


def new_id() -> str:
    """A session's or share link's ID (144 bits). Never begins with "-": an admin pastes it into
    `warren sessions revoke ID` or `warren share revoke ID`, where it would read as an option."""
    while (candidate := secrets.token_urlsafe(18)).startswith("-"):
        pass  # one draw in 64; drawing again keeps every ID uniform over the rest
    return candidate


def fingerprint(secret_hash: str) -> str:
    """Names a resource password's hash in its tokens: changing the password ends them."""
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:16]


def mint(
    keys: KeyRing,
    *,
    use: Use,
    issuer: str,
    audience: str,
    subject: str,
    lifetime: float,
    claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    key = keys.signing_key()
    payload = {
        **(claims or {}),
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "use": use,
        "iat": issued,
        "exp": issued + int(lifetime),
    }
    return jwt.encode(payload, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def verify(
    keys: PublicKeys, token: str, *, use: Use, issuer: str, audience: str | Sequence[str]
) -> dict[str, Any]:
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise TokenError("no token, or one too large to be Warren's")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenError(f"unreadable token: {error}") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise TokenError(f"refused algorithm {header.get('alg')!r} or missing kid")
    public = keys.public_key(kid)
    if public is None:
        raise UnknownKey(f"unknown signing key {kid[:40]!r}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public,
            algorithms=[ALGORITHM],
            audience=audience if isinstance(audience, str) else list(audience),
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED, "strict_aud": isinstance(audience, str)},
        )
    except jwt.PyJWTError as error:
        raise TokenError(str(error)) from None
    if claims.get("use") != use:
        raise TokenError(f"a {claims.get('use')!r} token where a {use!r} token belongs")
    if not isinstance(claims["sub"], str) or not isinstance(claims["aud"], str):
        raise TokenError("the subject and the audience must each be one text")
    return claims
