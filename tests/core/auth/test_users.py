"""users.yaml: what an account may hold, sign-in against it, the account as the file says now,
and the file as the portal and the gateway read it (changes seen, a broken file refused)."""

import functools
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.auth.identity import Identity
from core.auth.users import (
    Passkey,
    User,
    UsersFile,
    UsersSource,
    active_user,
    authenticate,
    current_identity,
    hash_secret,
    load_users,
    parse_users,
    replace_text,
    update,
)
from core.problems import ConfigError


@functools.cache
def password_hash() -> str:
    return hash_secret("correct horse")  # argon2id takes a moment: made once


def users(**accounts: User) -> UsersFile:
    return UsersFile(users=accounts)


def alice(**fields: object) -> User:
    return User(password=password_hash(), email="alice@example.com", groups=("staff",), **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "hunter2"}, "never a plain password"),
        ({"email": "not-an-address"}, "is not an e-mail address"),
        ({"groups": ("has space",)}, "is not a group name"),
        ({"totp": "lowercase-seed"}, "totp"),
        ({"admin": True}, "admin"),
    ],
)
def test_an_account_holds_only_what_it_may(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        User.model_validate({"password": password_hash(), **fields})


def test_sign_in_needs_the_password_and_an_enabled_account() -> None:
    file = users(alice=alice(), bob=alice(disabled=True))
    assert authenticate(file, "alice", "correct horse") == file.users["alice"]
    assert authenticate(file, "alice", "wrong") is None
    assert authenticate(file, "bob", "correct horse") is None  # like a wrong password
    assert authenticate(file, "nobody", "correct horse") is None
    assert active_user(file, "alice") is not None
    assert active_user(file, "bob") is None
    assert active_user(file, "nobody") is None


def test_a_proof_carries_the_account_as_the_file_says_now() -> None:
    proof = Identity("alice", "session", expires=0, email="old@example.com", groups=("old",))
    now = current_identity(users(alice=alice()), proof)
    assert now is not None
    assert (now.groups, now.email) == (("staff",), "alice@example.com")
    assert current_identity(users(alice=alice(disabled=True)), proof) is None
    assert current_identity(users(), proof) is None
    link = Identity("share:abc", "share", expires=0)
    assert current_identity(users(), link) is link


def test_the_source_sees_changes_and_keeps_the_last_good_file(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    source = UsersSource(path)
    assert source.current().users == {}
    update(path, lambda file: UsersFile(users={**file.users, "alice": alice()}))
    assert set(source.current().users) == {"alice"}
    assert load_users(path) == source.current()
    generation = source.generation
    path.write_text("version: 1\nusers: {alice: {password: plain}}\n")
    assert set(source.current().users) == {"alice"}
    assert source.last_error is not None
    assert "never a plain password" in source.last_error
    assert source.generation == generation


def test_the_gateways_source_looks_at_the_file_at_most_every_recheck(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    source = UsersSource(path, recheck_seconds=3600)
    update(path, lambda file: UsersFile(users={"alice": alice()}))
    assert source.current().users == {}  # not looked at again yet


def test_a_pushed_copy_is_checked_as_the_file_and_put_in_place_whole(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    text = f"version: 1\nusers:\n  carol:\n    password: '{password_hash()}'\n"
    assert set(parse_users(text).users) == {"carol"}
    with pytest.raises(ConfigError, match="never a plain password"):
        parse_users("version: 1\nusers:\n  carol: {password: hunter22}\n", path)
    replace_text(path, text)
    assert path.read_text() == text
    assert path.stat().st_mode & 0o777 == 0o600  # hashes and TOTP seeds
    assert set(load_users(path).users) == {"carol"}


def test_a_totp_secret_or_a_passkey_makes_the_password_alone_not_enough() -> None:
    user = User(password=hash_secret("pw"))
    assert not user.two_factor
    assert user.model_copy(update={"totp": "JBSWY3DPEHPK3PXP"}).two_factor
    passkey = Passkey(id="A" * 22, public_key="B" * 40)
    assert user.model_copy(update={"passkeys": (passkey,)}).two_factor
