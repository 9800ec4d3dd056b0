"""The first admin in users.yaml, made with what `warren user add` uses (core.auth.users): the
same model, argon2id hash, minimum length and locked read-change-write."""

import re
import secrets
import sys
from pathlib import Path

from pydantic import ValidationError

from core.auth.users import MIN_PASSWORD, NAME, User, UsersFile, hash_secret, update

ADMINS = "admins"  # the first admin's group; policy.yaml's example mentions it


def checked_name(name: str) -> str:
    if not re.match(NAME, name.strip()):
        raise ValueError(f"{name!r} is not a user name: lower-case letters, digits, '.', '_', '-'")
    return name.strip()


def checked_email(email: str) -> str:
    """As users.yaml will take it: the model that reads the file checks it (a hash is needed to
    build one; this stand-in is never kept)."""
    try:
        user = User.model_validate({"password": "$argon2id$", "email": email.strip()})
    except ValidationError as error:
        raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
    return str(user.email)


def generated_password() -> str:
    return secrets.token_urlsafe(18)  # 144 bits, 24 characters, nothing to quote in a shell


def password_from_stdin() -> str:
    return checked_password(sys.stdin.readline().rstrip("\r\n"))


def checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def asked_password(name: str) -> str:
    """Asked twice, as `warren user add` asks; again until it is long enough."""
    import typer

    while True:
        password: str = typer.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True
        )
        try:
            return checked_password(password)
        except ValueError as error:
            typer.secho(f"  {error}; again, please.", err=True, fg=typer.colors.YELLOW)


def admin_user(password: str, email: str) -> User:
    return User(password=hash_secret(password), email=email, groups=(ADMINS,))


def add_admin(path: Path, name: str, user: User) -> bool:
    """Into users.yaml, keeping any other user; True when `name` was there and is replaced."""
    replaced: list[bool] = []

    def add(users: UsersFile) -> UsersFile:
        replaced.append(name in users.users)
        return users.model_copy(update={"users": {**users.users, name: user}})

    update(path, add)
    return replaced[0]
