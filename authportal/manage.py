"""The admin operations the command line (`warren user`, `warren sessions`, `warren share`,
`warren token`) and the admin console (authportal.console) share: each change to users.yaml and
to the sign-in state is made here, one way, so what the console does is exactly what the
command does.

Two kinds of work, kept apart because the two callers run them differently:

- users.yaml changes are blocking (a file lock, an fsync, and with shared storage a push to the
  other nodes that runs its own event loop): plain functions, which the console calls through
  `asyncio.to_thread`;
- sign-in state changes (revocations, records) are coroutines on a `KeyValue`: the command line
  runs them on a short-lived one (authportal.admin.with_state), the portal on its own.

A request that cannot be carried out raises `Refused` with a sentence for the admin, and
changes nothing. Nothing here prints; the callers say what happened.
"""

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from core.auth import sessions
from core.auth.signinstate import KeyValue
from core.auth.users import NAME, User, UsersFile, load_users, update
from core.logs import event
from core.settings import Settings

if TYPE_CHECKING:
    from core.auth.apptokens import AppToken
    from core.auth.sessions import ShareRecord, SignInRecord

log = logging.getLogger("warren.admin")

COMMAND_LINE = "command-line"  # who changed it, in the change's log event: or `console:NAME`

# Links live at most a year; a revocation outlives any of them.
SHARE_REVOCATION_SECONDS = timedelta(days=366).total_seconds()
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# amr values (RFC 8176, docs/identity.md) as admins read them; "mfa" only repeats the others.
_METHODS = {
    "pwd": "password",
    "otp": "totp",
    "rec": "recovery-code",
    "hwk": "passkey",
    "email": "email-code",
    "oidc": "identity-provider",
    "token": "app-token",
    "mfa": "",
}


def how(methods: tuple[str, ...]) -> str:
    """A sign-in's methods (its amr) as the listings print them: `password+totp`."""
    named = (_METHODS.get(method, method) for method in methods)
    return "+".join(name for name in named if name) or "-"


class Refused(Exception):
    """What the admin asked for cannot be done; nothing was changed. `str()` says why."""


def change_users(settings: Settings, change: Callable[[UsersFile], UsersFile]) -> None:
    """users.yaml read, changed and replaced whole; one that cannot be written (a read-only
    mount, a directory of another account) is refused and stays as it was. With shared storage
    a newer pushed copy is taken first and the new file then goes to every node
    (core.cluster.push), so a user disabled here is disabled on all of them."""
    from core.cluster.push import catch_up_before_local_change, push_after_local_change

    catch_up_before_local_change(settings)
    try:
        update(settings.users_file, change)
    except OSError as error:
        raise Refused(
            f"{settings.users_file}: cannot write: {error.strerror or error} (users_file must be "
            "on a writable file system: in a container, a volume such as /var/lib/warren)"
        ) from None
    push_after_local_change(settings)


def change_user(settings: Settings, name: str, change: Callable[[User], User]) -> User:
    """Rewrite one user's entry under the users.yaml lock; the user as written."""
    changed: list[User] = []

    def rewrite(users: UsersFile) -> UsersFile:
        if name not in users.users:
            raise Refused(f"no user {name} in {settings.users_file}")
        changed.append(change(users.users[name]))
        return users.model_copy(update={"users": {**users.users, name: changed[0]}})

    change_users(settings, rewrite)
    return changed[0]


def validated(user: User, **changes: object) -> User:
    """A changed copy, checked as users.yaml would be (model_copy alone checks nothing)."""
    from pydantic import ValidationError

    try:
        return User.model_validate({**user.model_dump(), **changes})
    except ValidationError as error:
        raise Refused(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


def group_list(text: str) -> list[str]:
    """Comma-separated groups as admins type them: blanks and spaces around names dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def regroup(
    settings: Settings,
    name: str,
    *,
    groups: str | None = None,
    add: str = "",
    remove: str = "",
    by: str = COMMAND_LINE,
) -> User:
    """Set a user's groups (`groups`, comma-separated, '' for none), or add and remove some.
    Removing a group the user is not in is refused: it is a typing mistake more often than not.
    Gateways decide on the new groups within a second; sessions stay signed in."""
    if groups is not None and (add or remove):
        raise Refused("give the groups, or --add/--remove, not both")
    dropped = group_list(remove)

    def change(user: User) -> User:
        current = list(user.groups) if groups is None else []
        missing = [group for group in dropped if group not in current]
        if missing:
            raise Refused(f"{name} is not in {', '.join(missing)}; nothing was changed")
        wanted = [g for g in [*current, *group_list(groups or add)] if g not in dropped]
        return validated(user, groups=tuple(dict.fromkeys(wanted)))

    changed = change_user(settings, name, change)
    event(log, "user-groups-changed", user=name, groups=list(changed.groups), by=by)
    return changed


def check_name(name: str) -> None:
    if not re.match(NAME, name):
        raise Refused("a user name is lower-case letters, digits, '.', '_' and '-' (at most 63)")


async def revoke_user(settings: Settings, kv: KeyValue, name: str) -> None:
    """End every sign-in `name` made until now, on every node sharing the storage."""
    await sessions.revoke_user(kv, name, settings.session.ttl.total_seconds())


async def disable_user(settings: Settings, kv: KeyValue, name: str, by: str = COMMAND_LINE) -> None:
    """They cannot sign in, and their sign-ins end at once, everywhere."""
    await asyncio.to_thread(
        change_user, settings, name, lambda user: user.model_copy(update={"disabled": True})
    )
    await revoke_user(settings, kv, name)
    event(log, "user-disabled", user=name, by=by)


def enable_user(settings: Settings, name: str, by: str = COMMAND_LINE) -> None:
    """A disabled user may sign in again; their old sessions stay ended."""
    change_user(settings, name, lambda user: user.model_copy(update={"disabled": False}))
    event(log, "user-enabled", user=name, by=by)


def delete_user(settings: Settings, name: str) -> None:
    """Out of users.yaml; the caller then ends their sign-ins (`revoke_user`)."""

    def delete(users: UsersFile) -> UsersFile:
        if name not in users.users:
            raise Refused(f"no user {name} in {settings.users_file}")
        kept = {k: v for k, v in users.users.items() if k != name}
        return users.model_copy(update={"users": kept})

    change_users(settings, delete)


async def active_sessions(kv: KeyValue, user: str | None = None) -> "list[SignInRecord]":
    return await sessions.active_sign_ins(kv, user)


async def revoke_session(kv: KeyValue, session_id: str, by: str = COMMAND_LINE) -> "SignInRecord":
    """End one sign-in: refused on the next request on every gateway sharing the storage."""
    found = [r for r in await sessions.active_sign_ins(kv) if r.session_id == session_id]
    if not found:
        raise Refused(f"no active sign-in {session_id!r} (see `warren sessions list`)")
    await sessions.revoke_session(kv, session_id, found[0].expires)
    event(log, "session-revoked", user=found[0].user, session=session_id, by=by)
    return found[0]


async def revoke_sessions_of(
    settings: Settings, kv: KeyValue, user: str, by: str = COMMAND_LINE
) -> int:
    """End every sign-in of `user`; how many were active. A name that is neither a user nor
    anyone's sign-in is refused (a typing mistake)."""
    active = await sessions.active_sign_ins(kv, user)
    if not active and user not in load_users(settings.users_file).users:
        raise Refused(f"no user {user} in {settings.users_file}, and no sign-in of theirs")
    await revoke_user(settings, kv, user)
    event(log, "user-sessions-revoked", user=user, active=len(active), by=by)
    return len(active)


async def active_shares(kv: KeyValue) -> "list[ShareRecord]":
    return await sessions.active_shares(kv)


async def record_share(kv: KeyValue, record: "ShareRecord") -> None:
    await sessions.record_share(kv, record)


async def revoke_share(kv: KeyValue, link_id: str, by: str = COMMAND_LINE) -> None:
    """End a share link on every node. Any id is taken, listed or not: a link made before links
    were recorded, or on a node whose record was lost, must still be revocable by its id."""
    if not _LINK_ID.match(link_id):
        raise Refused(f"{link_id[:80]!r} is not a share link id")
    await sessions.revoke_share(kv, link_id, time.time() + SHARE_REVOCATION_SECONDS)
    event(log, "share-revoked", link=link_id, by=by)


async def create_token(
    settings: Settings,
    kv: KeyValue,
    user: str,
    resource: str,
    lifetime: timedelta,
    name: str = "",
    by: str = COMMAND_LINE,
) -> "tuple[str, AppToken]":
    """A bearer token for `user` on `resource` (its text, to show once, and its record). The
    user must be an account that may sign in, the resource an http one that wants sign-in."""
    from core.auth.apptokens import create
    from core.policy.check import node_capabilities
    from core.policy.load import load_policy
    from core.problems import ConfigError

    account = (await asyncio.to_thread(load_users, settings.users_file)).users.get(user)
    if account is None or account.disabled:
        raise Refused(f"no user {user} who may sign in, in {settings.users_file}")
    try:
        policy = await asyncio.to_thread(
            load_policy, settings.policy_file, node_capabilities(settings)
        )
    except ConfigError as error:
        raise Refused(f"{settings.policy_file} does not load: {error}") from None
    compiled = policy.resources.get(resource)
    if compiled is None or compiled.model.protocol != "http" or compiled.public:
        raise Refused(f"no http resource named {resource} that wants sign-in")
    try:
        text, record = await create(kv, user, resource, lifetime, name)
    except ValueError as error:
        raise Refused(str(error)) from None
    event(log, "token-created", user=user, resource=resource, token=record.token_id, by=by)
    return text, record


async def active_tokens(kv: KeyValue, user: str | None = None) -> "list[AppToken]":
    from core.auth.apptokens import active

    return await active(kv, user)


async def revoke_token(kv: KeyValue, token_id: str, by: str = COMMAND_LINE) -> "AppToken":
    """End an app's token: refused on the next request on every gateway sharing the storage."""
    from core.auth.apptokens import revoke

    record = await revoke(kv, token_id)
    if record is None:
        raise Refused(f"no active token {token_id[:80]!r} (see `warren token list`)")
    event(log, "token-revoked", user=record.user, token=token_id, by=by)
    return record
