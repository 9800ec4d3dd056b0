"""`warren user passkeys`: list an account's passkeys, remove one by its ID or a unique
beginning of it."""

from pathlib import Path

import pytest
import typer

from authportal.commands import register
from core.auth.users import Passkey, User, UsersFile, hash_secret, load_users, update
from tests.authportal.test_commands import fails, invoke

FIRST = Passkey(
    id="AAAAbbbbCCCCdddd1111", public_key="pk" * 20, name="laptop", created="2026-12-01"
)
SECOND = Passkey(
    id="AAAAzzzzCCCCdddd2222", public_key="pk" * 20, name="phone", created="2026-12-02"
)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text("version: 1\nresources: {}\n")
    path = tmp_path / "warren.yaml"
    path.write_text(
        "public_url: https://auth.example.com\npolicy_file: policy.yaml\n"
        "users_file: users.yaml\nstate_dir: state\n"
    )
    return path


def with_passkeys(config: Path) -> Path:
    path = config.parent / "users.yaml"
    alice = User(password=hash_secret("a password"), passkeys=(FIRST, SECOND))
    bob = User(password=hash_secret("a password"))
    update(path, lambda users: UsersFile(users={"alice": alice, "bob": bob}))
    return path


def test_passkeys_are_listed_with_a_short_id_name_and_date(cli: typer.Typer, config: Path) -> None:
    with_passkeys(config)
    lines = invoke(cli, config, "user", "passkeys", "alice").splitlines()
    assert lines[0].split() == ["ID", "NAME", "CREATED"]
    assert lines[1].split() == ["AAAAbbbbCCCC", "laptop", "2026-12-01"]
    assert lines[2].split() == ["AAAAzzzzCCCC", "phone", "2026-12-02"]
    assert "bob has no passkey" in invoke(cli, config, "user", "passkeys", "bob")
    assert "no user carol" in fails(cli, config, "user", "passkeys", "carol")


def test_a_passkey_is_removed_by_a_unique_beginning_of_its_id(
    cli: typer.Typer, config: Path
) -> None:
    path = with_passkeys(config)
    output = fails(cli, config, "user", "passkeys", "alice", "--remove", "AAAA")
    assert "AAAA names 2 passkeys of alice" in output
    assert "has no passkey nope" in fails(
        cli, config, "user", "passkeys", "alice", "--remove", "nope"
    )
    assert load_users(path).users["alice"].passkeys == (FIRST, SECOND)  # nothing changed
    output = invoke(cli, config, "user", "passkeys", "alice", "--remove", "AAAAz")
    assert "removed the passkey phone (AAAAzzzzCCCC) of alice" in output
    assert load_users(path).users["alice"].passkeys == (FIRST,)
    invoke(cli, config, "user", "passkeys", "alice", "--remove", FIRST.id)
    assert load_users(path).users["alice"].passkeys == ()
