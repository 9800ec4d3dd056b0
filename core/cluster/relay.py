"""A request carried from the node that decided it to a node that has its site online.

Node B received the request, decided it completely (rules, rate limits, sign-in, the identity
headers) and picked a target whose site has no tunnel to B right now; a live node A reports the
site online (its NodeRecord's `sites_online`). B sends the request to A's `node.url` over HTTPS
with a `Warren-Relay` header: a token B signs with its own signing key (`use: relay`), addressed
to A by name, naming B as issuer, bound to this request (method, host, target path) and to the
target (resource, site, host, port), living RELAY_SECONDS, with a jti A accepts once.

A verifies it with the public key B published (core.cluster.keys: a removed node's keys are
gone, so its tokens fail) and only while B is a live node, then forwards the request as it came,
without deciding it again (B did; rate limits count once), straight into its own tunnel to the
target; never to another node (no loops). Without a valid token there is no relay: the header
from anyone else is refused (403), so the relay opens no way around a node's decisions.

Why a token and not mutual TLS between nodes: the nodes already trust each other's published
signing keys for sessions, and a token also binds the one request it carries, which a TLS
connection (reused for many requests) cannot.
"""

import secrets
import time
from collections.abc import Collection
from typing import Any, NamedTuple, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.auth.signing import KeyRing
from core.auth.tokens import PublicKeys, TokenError, mint, verify

HEADER = "warren-relay"
RELAY_SECONDS = 10


class Carried(NamedTuple):
    """What a relay token is bound to: the request as B forwards it, and the target B chose."""

    method: str
    host: str  # the Host the request was decided by
    path: str  # the request target as forwarded (origin-form, with the query)
    resource: str
    site: str
    target_host: str
    target_port: int

    def as_claims(self) -> dict[str, Any]:
        return {"req": [self.method, self.host, self.path], "target": self._target()}

    def _target(self) -> list[object]:
        return [self.resource, self.site, self.target_host, self.target_port]

    def matches(self, claims: dict[str, Any]) -> bool:
        return (
            claims.get("req") == [self.method, self.host, self.path]
            and claims.get("target") == self._target()
        )


def mint_relay(keys: KeyRing, *, sender: str, receiver: str, carried: Carried) -> str:
    return mint(
        keys,
        use="relay",
        issuer=sender,
        audience=receiver,
        subject=carried.site,
        lifetime=RELAY_SECONDS,
        claims={"jti": secrets.token_urlsafe(12), **carried.as_claims()},
    )


class NodeKeys(PublicKeys, Protocol):
    """The keys other nodes published, and which node published each (core.cluster.keys)."""

    def node_of(self, kid: str) -> str | None: ...


class _IssuedBy:
    """Only the keys the named node published."""

    def __init__(self, keys: NodeKeys, node: str) -> None:
        self._keys, self._node = keys, node

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.public_key(kid)
        return key if key is not None and self._keys.node_of(kid) == self._node else None


class Replays:
    """The jtis accepted while their tokens could still be used: each opens one request. Kept
    in the order accepted, which is nearly the order they expire in, so forgetting the expired
    ones costs a look at the oldest."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def first_use(self, jti: str, until: float, now: float) -> bool:
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= now:
                break
            del seen[oldest]
        if jti in seen:
            return False
        seen[jti] = until
        return True


def verify_relay(
    token: str,
    *,
    receiver: str,
    keys: NodeKeys,
    live: Collection[str],
    carried: Carried,
    replays: Replays,
    now: float | None = None,
) -> str:
    """The node that relayed this request; TokenError for anything else."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise TokenError(f"unreadable relay token: {error}") from None
    sender = unverified.get("iss")
    if not isinstance(sender, str) or sender == receiver or sender not in live:
        raise TokenError(f"not from another live node: {str(sender)[:40]!r}")
    claims = verify(_IssuedBy(keys, sender), token, use="relay", issuer=sender, audience=receiver)
    issued, expires, jti = claims["iat"], claims["exp"], claims.get("jti")
    if not isinstance(jti, str) or expires - issued > RELAY_SECONDS:
        raise TokenError("a relay token lives at most 10 s and names itself (jti)")
    if not carried.matches(claims):
        raise TokenError("issued for another request or target")
    now = time.time() if now is None else now
    if not replays.first_use(jti, float(expires) + 30, now):
        raise TokenError("already used")
    return sender
