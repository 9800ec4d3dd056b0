"""The Warren pack in-process with sign-in configured, and tokens made as the portal makes them."""

import asyncio
import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy.test import taddons

from addons.runtime import Runtime
from core.auth import sessions
from core.auth.signing import KeyRing
from core.auth.signinstate import SqliteKV
from core.auth.tokens import mint, new_id
from core.auth.users import User, UsersFile, hash_secret, update
from tests.support import inprocess

PORTAL = "http://auth.example"

POLICY = """\
version: 1
resources:
  portal:
    host: auth.example
    auth: public
    targets: [{host: 192.0.2.1, port: 9180}]
  app:
    host: app.example
    targets: [{host: 192.0.2.10, port: 8080}]
  other:
    host: other.example
    targets: [{host: 192.0.2.11, port: 8080}]
  ops:
    host: ops.example
    auth: {users: [bob], groups: [ops]}
    targets: [{host: 192.0.2.12, port: 8080}]
  public:
    host: public.example
    auth: public
    targets: [{host: 192.0.2.13, port: 8080}]
"""


# The accounts sessions are minted for: the gateway decides on users.yaml as it is now.
USERS = {"alice": ("staff",), "bob": (), "carol": ("ops",)}


@functools.cache
def _password_hash() -> str:
    return hash_secret("correct horse battery")  # argon2id takes a moment: made once


def write_user(path: Path, name: str, groups: tuple[str, ...], disabled: bool = False) -> None:
    """Write `name` into users.yaml as `warren user` would (the file is replaced)."""
    fields = {"disabled": True} if disabled else {}
    user = User(password=_password_hash(), email=f"{name}@example.com", groups=groups, **fields)
    update(path, lambda users: UsersFile(users={**users.users, name: user}))


@dataclass
class SigninPack:
    context: taddons.context
    runtime: Runtime
    state: Path

    @property
    def users_file(self) -> Path:
        return self.state.parent / "users.yaml"

    def set_user(self, name: str, groups: tuple[str, ...] = (), disabled: bool = False) -> None:
        write_user(self.users_file, name, groups, disabled)

    def remove_user(self, name: str) -> None:
        update(
            self.users_file,
            lambda users: UsersFile(users={k: v for k, v in users.users.items() if k != name}),
        )

    @property
    def keys(self) -> KeyRing:
        return KeyRing(self.state / "keys")

    def kv(self) -> SqliteKV:
        return SqliteKV(self.state / "signin.sqlite3")

    def session(
        self,
        host: str,
        user: str = "alice",
        *,
        groups: tuple[str, ...] = ("staff",),
        sid: str | None = None,
        lifetime: float = 3600,
        now: float | None = None,
        **claims: Any,
    ) -> str:
        return mint(
            self.keys,
            use="session",
            issuer=PORTAL,
            audience=host,
            subject=user,
            lifetime=lifetime,
            claims={
                "sid": sid or new_id(),
                "email": f"{user}@example.com",
                "groups": list(groups),
                "auth_time": time.time() if now is None else now,
                **claims,
            },
            now=now,
        )

    def code(self, grant: sessions.CodeGrant) -> str:
        return asyncio.run(sessions.issue_code(self.kv(), grant))

    def revoke(self, sid: str) -> None:
        asyncio.run(sessions.revoke_session(self.kv(), sid, time.time() + 3600))


@contextmanager
def signin_pack(
    directory: Path,
    policy: str = POLICY,
    settings: str = "",
    users: dict[str, tuple[str, ...]] = USERS,  # name: groups, in users.yaml from the start
) -> Iterator[SigninPack]:
    for name, groups in users.items():
        write_user(directory / "users.yaml", name, groups)
    with inprocess.pack(directory, policy, f"public_url: {PORTAL}\n{settings}") as running:
        yield SigninPack(running.context, running.runtime, directory / "state")
