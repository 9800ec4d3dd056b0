"""Sign-ins, revocation and one-time codes, on the shared sign-in state (`core.auth.signinstate`).

Signing out revokes the sign-in's session id: every cookie minted from it (the portal's and
one per resource host) carries that id, so the sign-out reaches every resource at once. Deleting
a user or changing their password revokes everything they signed in to before that moment.

Each sign-in is also recorded when the portal makes it, living as long as its session, so
`warren sessions list` can show what is active; a revoked one drops out of the listing. Share
links are recorded the same way when `warren share` makes one (`ShareRecord`), for `warren
share list` and the admin console.
"""

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass

from core.auth.signinstate import KeyValue

CODE_SECONDS = 30  # a callback code lives just long enough for one redirect


def _sid_key(session_id: str) -> str:
    return f"revoked:sid:{session_id}"


def _user_key(user: str) -> str:
    return f"revoked:user:{user}"


def _share_key(share_id: str) -> str:
    return f"revoked:share:{share_id}"


async def revoke_session(kv: KeyValue, session_id: str, expires: float) -> None:
    await kv.put(_sid_key(session_id), "1", max(1.0, expires - time.time()))


async def revoke_user(kv: KeyValue, user: str, session_lifetime: float) -> None:
    """Every sign-in of `user` made before now; newer ones are unaffected."""
    await kv.put(_user_key(user), str(time.time()), session_lifetime + 60)


async def revoke_share(kv: KeyValue, share_id: str, expires: float) -> None:
    await kv.put(_share_key(share_id), "1", max(1.0, expires - time.time()))


def revocation_keys(session_id: str | None, user: str | None) -> list[str]:
    keys = []
    if session_id:
        keys.append(_sid_key(session_id))
    if user:
        keys.append(_user_key(user))
    return keys


def is_revoked(
    found: dict[str, str], session_id: str | None, user: str | None, issued_at: float
) -> bool:
    if session_id and _sid_key(session_id) in found:
        return True
    if user:
        cutoff = found.get(_user_key(user))
        if cutoff is not None and issued_at <= float(cutoff):
            return True
    return False


async def revoked(kv: KeyValue, session_id: str | None, user: str | None, issued_at: float) -> bool:
    keys = revocation_keys(session_id, user)
    return bool(keys) and is_revoked(await kv.get_many(keys), session_id, user, issued_at)


async def share_revoked(kv: KeyValue, share_id: str) -> bool:
    return bool(await kv.get_many([_share_key(share_id)]))


_SIGN_IN = "signin:"


@dataclass(frozen=True, slots=True)
class SignInRecord:
    """One sign-in at the portal: what every cookie minted from it shares (`session_id`)."""

    session_id: str
    user: str
    started: float  # Unix time; the sign-in's auth_time, which user revocation compares
    expires: float
    methods: tuple[str, ...]  # the token's amr: "pwd", then "otp" with a second factor
    address: str  # the client's address at sign-in


async def record_sign_in(kv: KeyValue, record: SignInRecord) -> None:
    await kv.put(
        _SIGN_IN + record.session_id, json.dumps(asdict(record)), record.expires - time.time()
    )


async def active_sign_ins(kv: KeyValue, user: str | None = None) -> list[SignInRecord]:
    """Sign-ins not yet expired or revoked, oldest first; only `user`'s when given."""
    records = []
    for value in (await kv.scan(_SIGN_IN)).values():
        fields = json.loads(value)
        record = SignInRecord(**{**fields, "methods": tuple(fields["methods"])})
        if user is None or record.user == user:
            records.append(record)
    keys = sorted({key for r in records for key in revocation_keys(r.session_id, r.user)})
    found = await kv.get_many(keys) if keys else {}
    live = [r for r in records if not is_revoked(found, r.session_id, r.user, r.started)]
    return sorted(live, key=lambda r: (r.started, r.session_id))


_SHARE = "share:"


@dataclass(frozen=True, slots=True)
class ShareRecord:
    """One share link `warren share` made: what it opens and until when, never its token (the
    token is the secret; its `jti` is `link_id`, what revocation names)."""

    link_id: str
    resource: str
    host: str
    path: str
    created: float  # Unix time
    expires: float


async def record_share(kv: KeyValue, record: ShareRecord) -> None:
    await kv.put(_SHARE + record.link_id, json.dumps(asdict(record)), record.expires - time.time())


async def active_shares(kv: KeyValue) -> list[ShareRecord]:
    """Share links not yet expired or revoked, oldest first. A link made before links were
    recorded is not listed, though `revoke_share` still ends it."""
    records = [ShareRecord(**json.loads(value)) for value in (await kv.scan(_SHARE)).values()]
    keys = [_share_key(record.link_id) for record in records]
    found = await kv.get_many(keys) if keys else {}
    live = [record for record in records if _share_key(record.link_id) not in found]
    return sorted(live, key=lambda r: (r.created, r.link_id))


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What a callback code stands for: a token for one resource host and where to land."""

    host: str
    token: str
    use: str  # "session" or "password": which cookie the token becomes
    path: str  # path and query on that host
    secure: bool  # the resource is reached over https: its cookie gets Secure


def _code_key(code: str) -> str:
    # Only a hash is stored: whoever reads the state cannot use a code still in flight.
    return "code:" + hashlib.sha256(code.encode()).hexdigest()


async def issue_code(kv: KeyValue, grant: CodeGrant) -> str:
    code = secrets.token_urlsafe(32)
    await kv.put(_code_key(code), json.dumps(asdict(grant)), CODE_SECONDS)
    return code


async def redeem_code(kv: KeyValue, code: str) -> CodeGrant | None:
    if not code or len(code) > 128:
        return None
    stored = await kv.take(_code_key(code))
    if stored is None:
        return None
    return CodeGrant(**json.loads(stored))


async def first_use(kv: KeyValue, what: str, ttl: float) -> bool:
    """True the first time `what` is seen within ttl (a TOTP code must not work twice)."""
    return await kv.add("used:" + hashlib.sha256(what.encode()).hexdigest(), "1", ttl)
