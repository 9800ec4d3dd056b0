"""Tokens for native apps, which cannot follow the portal's redirects: `warren token create`
makes one for a user and one resource, sent as `Authorization: Bearer` (RFC 6750 §2.1).

A token reads `wrn_<id>_<secret>`. The id names its record in the sign-in state
(`apptoken:<id>`); of the secret, 32 random bytes, only a SHA-256 digest is stored. A slow hash
(argon2) would add nothing against 256 random bits and would cost every request: the gateway
checks the token on each one. Records are mirrored in memory like revocations
(`core.auth.signinstate.MIRRORED`), so checking one costs no round trip to storage.

A token's id is its session id: revoking it is a sign-out (`core.auth.sessions.revoke_session`),
which every node sharing the storage applies within a second, and ending all of a user's
sign-ins (a password change, `warren sessions revoke --user`, deletion) ends the tokens made
before that moment too.
"""

import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from core.auth import sessions
from core.auth.identity import Identity
from core.auth.signinstate import KeyValue

PREFIX = "apptoken:"
MAX_LIFETIME = timedelta(days=400)  # an app's token is renewed at least yearly; none is forever
_TOKEN = re.compile(r"^wrn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{16}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{0,64}$")


class TokenRefused(Exception):
    """A bearer token that opens nothing; `str()` says why (for the log, never the client)."""


@dataclass(frozen=True, slots=True)
class AppToken:
    """What a token opens and until when; `digest` is the SHA-256 of its secret."""

    token_id: str
    user: str
    resource: str
    name: str
    created: float  # Unix time; user revocation compares it as a sign-in's start
    expires: float
    digest: str

    def identity(self) -> Identity:
        """The person the token speaks for; groups and e-mail come from users.yaml as it is
        when the request arrives (`core.auth.users.current_identity`)."""
        return Identity(
            subject=self.user,
            method="token",
            expires=self.expires,
            session_id=self.token_id,
            issued_at=self.created,
            amr=("token",),
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(
    kv: KeyValue, user: str, resource: str, lifetime: timedelta, name: str = ""
) -> tuple[str, AppToken]:
    """A new token (its text, shown once) and its stored record."""
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a token lives from a second to {MAX_LIFETIME.days} days")
    if not _NAME.match(name):
        raise ValueError("a token's name is at most 64 printable characters")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    now = time.time()
    record = AppToken(
        token_id, user, resource, name, now, now + lifetime.total_seconds(), _digest(secret)
    )
    await kv.put(PREFIX + token_id, json.dumps(asdict(record)), lifetime.total_seconds())
    return f"wrn_{token_id}_{secret}", record


@functools.lru_cache(maxsize=4096)
def _record(value: str) -> AppToken:
    # Parsed once per stored record, not on every request that brings its token (the records
    # are immutable: a revocation is another key).
    return AppToken(**json.loads(value))


@dataclass(frozen=True, slots=True)
class _Checked:
    """A token text whose secret matched its record, and that record as it was stored."""

    keys: tuple[str, ...]  # the record's key, then its revocation keys
    stored: str
    record: AppToken


# Token texts already checked, so a request with a known token costs one lookup in the mirror
# (its record and revocations together) and no regex, parse or hash; the stored record must
# still be there and the same, so a token gone from the state is refused as before.
_CHECKED: dict[str, _Checked] = {}
_CHECKED_MAX = 4096


async def verify(kv: KeyValue, text: str, resource: str) -> AppToken:
    """The record of a token that opens `resource` now, or TokenRefused."""
    checked = _CHECKED.get(text)
    if checked is not None:
        found = await kv.get_many(checked.keys)
        if found.get(checked.keys[0]) == checked.stored:
            return _opens(checked.record, resource, found)
        del _CHECKED[text]
    match = _TOKEN.match(text)
    if match is None:
        raise TokenRefused("not a Warren token")
    token_id, secret = match.groups()
    key = PREFIX + token_id
    value = (await kv.get_many([key])).get(key)
    if value is None:
        raise TokenRefused(f"token {token_id} is unknown or expired")
    record = _record(value)
    if not hmac.compare_digest(record.digest, _digest(secret)):
        raise TokenRefused(f"token {token_id}: wrong secret")
    keys = (key, *sessions.revocation_keys(token_id, record.user))
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[text] = _Checked(keys, value, record)
    return _opens(record, resource, await kv.get_many(keys))


def _opens(record: AppToken, resource: str, found: dict[str, str]) -> AppToken:
    token_id = record.token_id
    if record.expires <= time.time():
        raise TokenRefused(f"token {token_id} expired")
    if record.resource != resource:
        raise TokenRefused(f"token {token_id} is for {record.resource}, not {resource}")
    if sessions.is_revoked(found, token_id, record.user, record.created):
        raise TokenRefused(f"token {token_id} was revoked")
    return record


async def active(kv: KeyValue, user: str | None = None) -> list[AppToken]:
    """Tokens not yet expired or revoked, oldest first; only `user`'s when given."""
    records = [_record(value) for value in (await kv.scan(PREFIX)).values()]
    now = time.time()
    records = [r for r in records if r.expires > now and (user is None or r.user == user)]
    keys = sorted({k for r in records for k in sessions.revocation_keys(r.token_id, r.user)})
    found = await kv.get_many(keys) if keys else {}
    live = [r for r in records if not sessions.is_revoked(found, r.token_id, r.user, r.created)]
    return sorted(live, key=lambda r: (r.created, r.token_id))


async def revoke(kv: KeyValue, token_id: str) -> AppToken | None:
    """End a token on every node; its record, or None when no live token has that id."""
    if not _ID.match(token_id):
        return None
    found = [record for record in await active(kv) if record.token_id == token_id]
    if not found:
        return None
    await sessions.revoke_session(kv, token_id, found[0].expires)
    return found[0]
