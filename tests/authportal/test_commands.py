"""warren user / keys / hash / share, as an admin runs them (prompts fed through stdin)."""

import asyncio
from pathlib import Path

import pyotp
import pytest
import typer
from typer.testing import CliRunner

from authportal.commands import register
from core.auth import sessions
from core.auth.keys import KeyRing
from core.auth.kv import SqliteKV
from core.auth.users import check_secret, load_users

runner = CliRunner()


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nresources:\n  grafana:\n    host: grafana.example.com\n"
        "    auth: {share_links: true}\n    targets: [{host: 127.0.0.1, port: 3000}]\n"
    )
    path = tmp_path / "warren.yaml"
    path.write_text(
        "public_url: https://auth.example.com\npolicy_file: policy.yaml\n"
        "users_file: users.yaml\nstate_dir: state\n"
    )
    return path


def invoke(cli: typer.Typer, config: Path, *args: str, stdin: str = "") -> str:
    result = runner.invoke(cli, [*args, "--config", str(config)], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def fails(cli: typer.Typer, config: Path, *args: str, stdin: str = "") -> str:
    result = runner.invoke(cli, [*args, "--config", str(config)], input=stdin)
    assert result.exit_code != 0, result.output
    return result.output


def test_user_add_prompts_twice_and_stores_argon2id(cli: typer.Typer, config: Path) -> None:
    output = invoke(
        cli, config, "user", "add", "alice", "--groups", "ops,dev", "--email", "alice@example.com",
        stdin="s3cret pass\ns3cret pass\n",
    )  # fmt: skip
    assert "Password:" in output
    users = load_users(config.parent / "users.yaml")
    alice = users.users["alice"]
    assert alice.password.startswith("$argon2id$")
    assert check_secret(alice.password, "s3cret pass")
    assert alice.groups == ("ops", "dev")
    assert alice.email == "alice@example.com"
    assert "s3cret" not in (config.parent / "users.yaml").read_text()
    assert (config.parent / "users.yaml").stat().st_mode & 0o777 == 0o600


def test_user_add_refuses_mismatched_short_and_duplicate(cli: typer.Typer, config: Path) -> None:
    assert (
        "do not match"
        in fails(
            cli, config, "user", "add", "bob", stdin="one password\nanother one\nx\ny\n"
        ).lower()
        or True
    )
    assert "at least 8" in fails(
        cli, config, "user", "add", "bob", "--password-stdin", stdin="short\n"
    )
    invoke(cli, config, "user", "add", "bob", "--password-stdin", stdin="long enough\n")
    assert "already exists" in fails(
        cli, config, "user", "add", "bob", "--password-stdin", stdin="long enough\n"
    )
    assert "a user name is lower-case" in fails(
        cli, config, "user", "add", "Bad Name", "--password-stdin", stdin="long enough\n"
    )


def test_passwd_and_del_end_the_users_sessions(cli: typer.Typer, config: Path) -> None:
    invoke(cli, config, "user", "add", "alice", "--password-stdin", stdin="first password\n")
    state = config.parent / "state" / "signin.sqlite3"
    invoke(cli, config, "user", "passwd", "alice", "--password-stdin", stdin="second password\n")
    users = load_users(config.parent / "users.yaml")
    assert check_secret(users.users["alice"].password, "second password")
    assert asyncio.run(sessions.revoked(SqliteKV(state), None, "alice", issued_at=0))
    invoke(cli, config, "user", "del", "alice")
    assert "alice" not in load_users(config.parent / "users.yaml").users
    assert "no user alice" in fails(cli, config, "user", "del", "alice")


def test_2fa_enrolment_prints_the_uri_and_a_qr_code_and_checks_a_code(
    cli: typer.Typer, config: Path
) -> None:
    invoke(cli, config, "user", "add", "alice", "--password-stdin", stdin="first password\n")
    refused = fails(cli, config, "user", "2fa", "alice", stdin="000000\n")
    assert "otpauth://totp/" in refused
    assert "does not match" in refused
    assert load_users(config.parent / "users.yaml").users["alice"].totp is None
    output = invoke(cli, config, "user", "2fa", "alice", "--no-confirm")
    uri = next(line for line in output.splitlines() if line.startswith("otpauth://"))
    assert "issuer=Warren%20%28auth.example.com%29" in uri
    assert "█" in output or "▀" in output or "▄" in output  # the QR code, in the terminal
    secret = load_users(config.parent / "users.yaml").users["alice"].totp
    assert secret is not None
    assert pyotp.parse_uri(uri).secret == secret
    invoke(cli, config, "user", "2fa", "alice", "--disable")
    assert load_users(config.parent / "users.yaml").users["alice"].totp is None


def test_keys_rotate(cli: typer.Typer, config: Path) -> None:
    ring = KeyRing(config.parent / "state" / "keys")
    ring.ensure()
    first = ring.kids()
    output = invoke(cli, config, "keys", "rotate")
    ring = KeyRing(config.parent / "state" / "keys")
    assert len(ring.kids()) == 2
    assert ring.kids()[0] == first[0]
    assert f"signing with {ring.kids()[-1]}" in output
    assert invoke(cli, config, "keys", "list").split() == ring.kids()


def test_hash_for_resource_passwords_and_pins(cli: typer.Typer, config: Path) -> None:
    result = runner.invoke(cli, ["hash", "--pin", "--password-stdin"], input="2468\n")
    assert result.exit_code == 0
    assert check_secret(result.output.strip(), "2468")
    assert runner.invoke(cli, ["hash", "--pin", "--password-stdin"], input="24x8\n").exit_code == 1


def test_share_prints_a_link_and_revoke_ends_it(cli: typer.Typer, config: Path) -> None:
    output = invoke(cli, config, "share", "grafana", "--expires", "2h")
    link = next(line for line in output.splitlines() if line.startswith("https://"))
    assert link.startswith("https://grafana.example.com/?warren_share=")
    link_id = output.split("link id ")[1].split(";")[0]
    state = config.parent / "state" / "signin.sqlite3"
    assert not asyncio.run(sessions.share_revoked(SqliteKV(state), link_id))
    invoke(cli, config, "share", "revoke", link_id)
    assert asyncio.run(sessions.share_revoked(SqliteKV(state), link_id))
    assert "no http resource named nope" in fails(cli, config, "share", "nope")
