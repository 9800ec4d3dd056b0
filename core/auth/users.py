"""users.yaml: the portal's accounts. Written by `warren user ...`; argon2id hashes only.

```yaml
version: 1
users:
  alice:
    password: $argon2id$v=19$m=65536,t=3,p=4$...
    email: alice@example.com
    groups: [ops]
    totp: JBSWY3DPEHPK3PXP      # present once `warren user 2fa alice` enrolled a second factor
    disabled: true              # present once `warren user disable alice` ran: no sign-in at all
    identities: {authentik: 8f2c0b...}   # OIDC providers' subjects that sign in as alice
    passkeys: [{id: ..., public_key: ..., name: laptop, created: 2026-12-02}]
    recovery: [9b74c9897bac770ffc029102a200c5de...]   # sha256 of each unused recovery code
```

The file holds secrets (hashes, TOTP seeds), so it is written with mode 0600.
"""

import fcntl
import functools
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import yaml
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from core.auth.identity import Identity
from core.files import write_atomically
from core.problems import ConfigError, from_validation_error
from core.yamlfile import load_yaml, locate, parse_yaml

HASHER = PasswordHasher(type=Type.ID)  # argon2-cffi's RFC 9106 low-memory profile
MIN_PASSWORD = 8  # characters, for every password a person chooses (users, resources)
NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _argon2id(value: str) -> str:
    if not value.startswith("$argon2id$"):
        raise ValueError("must be an argon2id hash ($argon2id$...), never a plain password")
    return value


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _groups(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _GROUP.match(value):
            raise ValueError(f"{value!r} is not a group name (letters, digits, '.', '_', '-')")
    return values


type Argon2id = Annotated[str, AfterValidator(_argon2id)]


class Passkey(BaseModel):
    """A WebAuthn credential registered for the account (core.auth.passkeys); its signature
    counter lives in the shared sign-in state, which changes on every use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{16,1400}$")  # the credential id, base64url
    public_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,4000}$")  # its COSE key, base64url
    name: str = Field(default="passkey", max_length=100)
    created: str = ""  # ISO 8601 date
    transports: tuple[str, ...] = ()


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    password: Argon2id
    email: Annotated[str | None, AfterValidator(_email)] = None
    groups: Annotated[tuple[str, ...], AfterValidator(_groups)] = ()
    totp: str | None = Field(default=None, pattern=r"^[A-Z2-7]{16,128}$")
    disabled: bool = False
    # provider name -> that provider's `sub`: the account an OIDC sign-in lands on. Linked by
    # the provider's subject, never by an e-mail address alone (which a provider may reassign).
    identities: dict[str, str] = Field(default_factory=dict)
    passkeys: tuple[Passkey, ...] = ()
    recovery: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] = ()  # sha256 of each

    @property
    def two_factor(self) -> bool:
        """Whether the password alone is not enough: a TOTP secret or a passkey to confirm it."""
        return self.totp is not None or bool(self.passkeys)


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    users: dict[Annotated[str, Field(pattern=NAME)], User] = Field(default_factory=dict)


def hash_secret(secret: str) -> str:
    return HASHER.hash(secret)


def check_secret(hashed: str, secret: str) -> bool:
    try:
        return HASHER.verify(hashed, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _stand_in_hash() -> str:
    """Verified in place of a missing user's hash, so an unknown name costs what a wrong
    password does (made on first use: hashing takes a noticeable moment)."""
    return HASHER.hash("warren: no such user")


def authenticate(users: UsersFile, name: str, password: str) -> User | None:
    """The user, if the password is theirs and the account may sign in. A disabled account
    is answered like a wrong password, after the same work."""
    user = users.users.get(name)
    matched = check_secret(user.password if user else _stand_in_hash(), password)
    return user if matched and user is not None and not user.disabled else None


def active_user(users: UsersFile, name: str) -> User | None:
    """The account behind a sign-in, as the file says now: None once deleted or disabled."""
    user = users.users.get(name)
    return None if user is None or user.disabled else user


def current_identity(users: UsersFile, identity: Identity) -> Identity | None:
    """A person's proof with their groups and e-mail as users.yaml says now (a session token
    carries those of the moment it was made); None once the account is deleted or disabled.
    Share links, resource passwords, certificates and people who signed in without an account
    (an identity provider's user, an e-mail code) pass unchanged."""
    if identity.user is None or identity.provider is not None:
        return identity
    user = users.users.get(identity.user)
    if user is None or user.disabled:
        return None
    if user.groups == identity.groups and user.email == identity.email:
        return identity  # the usual case: nothing to build
    return replace(identity, groups=user.groups, email=user.email)


def load_users(path: Path) -> UsersFile:
    if not path.exists():
        return UsersFile()
    text, data = load_yaml(path)
    return _validated(text, data, path)


def parse_users(text: str, path: Path | None = None) -> UsersFile:
    """users.yaml from its text (a pushed copy, core.cluster.sync); ConfigError as load_users."""
    return _validated(text, parse_yaml(text, path), path)


def _validated(text: str, data: object, path: Path | None) -> UsersFile:
    try:
        return UsersFile.model_validate(data or {})
    except ValidationError as error:
        raise ConfigError(locate(text, from_validation_error(error), path)) from None


def save_users(path: Path, users: UsersFile) -> None:
    data = {
        "version": 1,
        "users": {
            name: user.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
            for name, user in sorted(users.users.items())
        },
    }
    text = "# Written by `warren user`; argon2id hashes and TOTP seeds: keep it private.\n"
    text += yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    write_atomically(path, text.encode())


type UsersChange = Callable[["UsersFile"], "UsersFile"]
# What a change to users.yaml is handed to: `update` on one file, or, where nodes share
# storage, the writer that then pushes the file to every node (authportal.manage.change_users).
type UsersWriter = Callable[[UsersChange], object]


def update(path: Path, change: Callable[[UsersFile], UsersFile]) -> UsersFile:
    """Read, change, write back, under a lock so two `warren user` commands never race."""
    with _locked(path):
        changed = change(load_users(path))
        save_users(path, changed)
        return changed


def replace_text(path: Path, text: str) -> None:
    """Put a whole users.yaml in place (a pushed copy, already validated), under the lock
    `update` takes, so it never lands in the middle of a `warren user` command."""
    with _locked(path):
        write_atomically(path, text.encode())


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class UsersSource:
    """users.yaml as the portal and gateway read it: reloaded when the file changes; a file that
    does not validate keeps the last good one. The portal looks at the file on every use
    (sign-ins are rare); the gateway, which asks on every request, at most every
    `recheck_seconds`, so a change reaches it within that time at the cost of a clock read."""

    def __init__(self, path: Path, recheck_seconds: float = 0.0) -> None:
        self.path = path
        self._recheck = recheck_seconds
        self._checked = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._users = UsersFile()
        self.generation = 0
        self.last_error: str | None = None
        self.current()

    def current(self) -> UsersFile:
        now = time.monotonic()
        if self._recheck and now - self._checked < self._recheck:
            return self._users
        self._checked = now
        try:
            stat = os.stat(self.path)
            signature: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            signature = None
        if signature != self._signature:
            self._signature = signature
            try:
                self._users = load_users(self.path)
                self.generation += 1
                self.last_error = None
            except ConfigError as error:
                self.last_error = str(error)
        return self._users
