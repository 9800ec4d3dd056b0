"""Verified tokens, remembered: the gateway checks a token's signature once, then each request
costs a dictionary lookup and an expiry and audience comparison. Revocation is not remembered
here; the gateway asks the shared state on every request (`core.auth.sessions`).
"""

import time
from collections import OrderedDict
from typing import Any, NamedTuple

from core.auth.identity import Identity, Method
from core.auth.signing import KeyRing
from core.auth.tokens import TokenError, UnknownKey, Use, verify

_METHODS: dict[str, Method] = {"session": "session", "password": "password", "share": "share"}
NEGATIVE_SECONDS = 30.0
# Warren's tokens are well under this; a longer one is checked afresh each time rather than kept,
# so made-up tokens as large as a request head allows cannot fill memory.
REMEMBERED_REFUSAL_CHARACTERS = 4096


class Verified(NamedTuple):
    identity: Identity
    claims: dict[str, Any]
    audience: str


def audiences(host: str, cookie_domain: str | None) -> list[str]:
    """Who a token for `host` may be addressed to: the host, or the shared cookie domain."""
    found = [host]
    if cookie_domain:
        bare = cookie_domain.lstrip(".")
        if host == bare or host.endswith("." + bare):
            found.append(cookie_domain)
    return found


def identity_of(use: Use, claims: dict[str, Any]) -> Identity:
    groups = claims.get("groups", [])
    email = claims.get("email")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise TokenError("groups must be a list of names")
    if email is not None and not isinstance(email, str):
        raise TokenError("email must be text")
    amr = claims.get("amr", [])
    if not isinstance(amr, list) or not all(isinstance(a, str) for a in amr):
        raise TokenError("amr must be a list of names")
    provider = claims.get("idp")
    if provider is not None and not isinstance(provider, str):
        raise TokenError("idp must be text")
    method = _METHODS.get(use)
    if method is None:
        raise TokenError(f"{use!r} tokens carry no identity")
    session_id = claims.get("sid") if use == "session" else claims.get("jti")
    issued = claims.get("auth_time", claims["iat"])
    return Identity(
        subject=claims["sub"],
        method=method,
        expires=float(claims["exp"]),
        email=email,
        groups=tuple(groups),
        session_id=session_id if isinstance(session_id, str) else None,
        issued_at=float(issued) if isinstance(issued, int | float) else float(claims["iat"]),
        amr=tuple(amr),
        provider=provider,
        email_verified=claims.get("email_verified", True) is True,
    )


class Verifier:
    def __init__(
        self,
        keys: KeyRing,
        issuer: str,
        cookie_domain: str | None = None,
        max_entries: int = 20_000,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.cookie_domain = cookie_domain
        self._max = max_entries
        self._good: OrderedDict[tuple[Use, str], Verified] = OrderedDict()
        # Refusals by where the token was shown too: one shown to a host it is not for is still
        # good on its own host.
        self._bad: OrderedDict[tuple[Use, str, str], tuple[float, str]] = OrderedDict()
        self._generation = keys.generation

    def check(self, token: str, use: Use, host: str, audience: str | None = None) -> Verified:
        """The token's identity, for a request to `host` (or to a fixed `audience`)."""
        key = (use, token)
        now = time.time()
        if self.keys.generation != self._generation:  # a node's keys are no longer trusted
            self._good.clear()
            self._generation = self.keys.generation
        verified = self._good.get(key)
        if verified is not None:
            if verified.identity.expires <= now:
                del self._good[key]
                raise TokenError("expired")
            if audience is not None:
                if verified.audience != audience:
                    raise TokenError("issued for another audience")
            elif verified.audience != host and verified.audience not in audiences(
                host, self.cookie_domain
            ):
                raise TokenError("issued for another host")
            return verified
        refused_key = (use, token, host if audience is None else f"audience:{audience}")
        refused = self._bad.get(refused_key)
        if refused is not None and refused[0] > now:
            raise TokenError(refused[1])
        try:
            claims = verify(
                self.keys,
                token,
                use=use,
                issuer=self.issuer,
                audience=audience or audiences(host, self.cookie_domain),
            )
            verified = Verified(identity_of(use, claims), claims, claims["aud"])
        except UnknownKey:
            raise  # not remembered: the key may be published a moment from now
        except TokenError as error:
            if len(token) <= REMEMBERED_REFUSAL_CHARACTERS:
                self._remember(self._bad, refused_key, (now + NEGATIVE_SECONDS, str(error)))
            raise
        self._remember(self._good, key, verified)
        return verified

    async def check_known(
        self, token: str, use: Use, host: str, audience: str | None = None
    ) -> Verified:
        """`check`, but a kid no key here has first makes the other nodes' published keys be
        read again (at most once a second): a node that has just joined or rotated."""
        try:
            return self.check(token, use, host, audience)
        except UnknownKey:
            published = self.keys.published
            if published is None or not await published.look_again():
                raise
        return self.check(token, use, host, audience)

    def _remember[K, V](self, table: OrderedDict[K, V], key: K, value: V) -> None:
        table[key] = value
        if len(table) > self._max:
            table.popitem(last=False)
