"""warren user / keys / hash / share, as an admin runs them (prompts fed through stdin)."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
import typer
from typer.testing import CliRunner

from authportal.commands import register
from core.auth import sessions
from core.auth.signing import KeyRing
from core.auth.signinstate import SqliteKV
from core.auth.users import authenticate, check_secret, load_users
from tests.support.ci import in_ci

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
    # On stdout alone, for scripts: the URL, then `id ID`, then `expires TIME`.
    result = runner.invoke(cli, ["share", "grafana", "--config", str(config)])
    lines = result.stdout.splitlines()
    assert lines[0].startswith("https://grafana.example.com/?warren_share=")
    assert lines[1].startswith("id ")
    assert re.fullmatch(r"expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[2])
    assert len(lines) == 3
    assert f"id {link_id}" in output.splitlines()
    state = config.parent / "state" / "signin.sqlite3"
    assert not asyncio.run(sessions.share_revoked(SqliteKV(state), link_id))
    # Listed (the admin console lists the same records), without the token.
    header, *rows = invoke(cli, config, "share", "list").splitlines()
    assert header.split() == ["ID", "RESOURCE", "HOST", "PATH", "CREATED", "EXPIRES"]
    assert [row.split()[:4] for row in rows if row.startswith(link_id)] == [
        [link_id, "grafana", "grafana.example.com", "/"]
    ]
    assert "warren_share" not in "\n".join(rows)
    invoke(cli, config, "share", "revoke", link_id)
    assert asyncio.run(sessions.share_revoked(SqliteKV(state), link_id))
    assert link_id not in invoke(cli, config, "share", "list")
    assert "no http resource named nope" in fails(cli, config, "share", "nope")


def test_user_groups_sets_adds_and_removes(cli: typer.Typer, config: Path) -> None:
    invoke(cli, config, "user", "add", "alice", "--groups", "ops", "--password-stdin",
           stdin="first password\n")  # fmt: skip
    users_file = config.parent / "users.yaml"

    def groups() -> tuple[str, ...]:
        return load_users(users_file).users["alice"].groups

    invoke(cli, config, "user", "groups", "alice", "--add", "dev,ops")
    assert groups() == ("ops", "dev")
    invoke(cli, config, "user", "groups", "alice", "--remove", "ops")
    assert groups() == ("dev",)
    assert invoke(cli, config, "user", "groups", "alice").strip() == "dev"
    invoke(cli, config, "user", "groups", "alice", "web,db")
    assert groups() == ("web", "db")
    invoke(cli, config, "user", "groups", "alice", "")
    assert groups() == ()
    invoke(cli, config, "user", "groups", "alice", "web")
    # Mistakes say so and change nothing.
    assert "alice is not in opps" in fails(
        cli, config, "user", "groups", "alice", "--remove", "opps"
    )
    assert "not a group name" in fails(cli, config, "user", "groups", "alice", "--add", "b@d")
    assert "not both" in fails(cli, config, "user", "groups", "alice", "x", "--add", "y")
    assert "no user nobody" in fails(cli, config, "user", "groups", "nobody", "--add", "x")
    assert groups() == ("web",)


def test_disable_ends_sessions_and_enable_lets_in_again(cli: typer.Typer, config: Path) -> None:
    invoke(cli, config, "user", "add", "alice", "--password-stdin", stdin="first password\n")
    state = SqliteKV(config.parent / "state" / "signin.sqlite3")
    before = time.time() - 1
    invoke(cli, config, "user", "disable", "alice")
    alice = load_users(config.parent / "users.yaml").users["alice"]
    assert alice.disabled
    assert authenticate(load_users(config.parent / "users.yaml"), "alice", "first password") is None
    assert asyncio.run(sessions.revoked(state, None, "alice", issued_at=before))
    assert "disabled" in invoke(cli, config, "user", "list")
    invoke(cli, config, "user", "enable", "alice")
    users = load_users(config.parent / "users.yaml")
    assert authenticate(users, "alice", "first password") is not None
    assert "disabled" not in (config.parent / "users.yaml").read_text()
    assert "no user bob" in fails(cli, config, "user", "disable", "bob")


def _record(state: SqliteKV, sid: str, user: str, started: float, methods: tuple[str, ...]) -> None:
    record = sessions.SignInRecord(sid, user, started, started + 3600, methods, "2001:db8::7")
    asyncio.run(sessions.record_sign_in(state, record))


def test_sessions_list_and_revoke(cli: typer.Typer, config: Path) -> None:
    invoke(cli, config, "user", "add", "alice", "--password-stdin", stdin="first password\n")
    state = SqliteKV(config.parent / "state" / "signin.sqlite3")
    now = time.time()
    _record(state, "sid-a1", "alice", now - 30, ("pwd",))
    _record(state, "sid-a2", "alice", now - 20, ("pwd", "otp"))
    _record(state, "sid-b1", "bob", now - 10, ("pwd",))
    header, *rows = invoke(cli, config, "sessions", "list").splitlines()
    assert header.split() == ["USER", "SESSION", "STARTED", "EXPIRES", "HOW", "FROM"]
    assert [row.split()[:2] for row in rows] == [
        ["alice", "sid-a1"], ["alice", "sid-a2"], ["bob", "sid-b1"]
    ]  # fmt: skip
    assert rows[1].split()[4:] == ["password+totp", "2001:db8::7"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0].split()[2])
    _header, *alices = invoke(cli, config, "sessions", "list", "--user", "alice").splitlines()
    assert [row.split()[1] for row in alices] == ["sid-a1", "sid-a2"]

    assert "revoked sign-in sid-a1 of alice" in invoke(cli, config, "sessions", "revoke", "sid-a1")
    assert asyncio.run(sessions.revoked(state, "sid-a1", "alice", now - 30))
    assert not asyncio.run(sessions.revoked(state, "sid-a2", "alice", now - 20))
    assert "sid-a1" not in invoke(cli, config, "sessions", "list")
    assert "no active sign-in" in fails(cli, config, "sessions", "revoke", "sid-a1")
    assert "no active sign-in" in fails(cli, config, "sessions", "revoke", "made-up")

    assert "(1 active)" in invoke(cli, config, "sessions", "revoke", "--user", "alice")
    assert asyncio.run(sessions.revoked(state, "sid-a2", "alice", now - 20))
    _header, *left = invoke(cli, config, "sessions", "list").splitlines()
    assert [row.split()[1] for row in left] == ["sid-b1"]
    assert "one of them" in fails(cli, config, "sessions", "revoke")
    assert "one of them" in fails(cli, config, "sessions", "revoke", "sid-b1", "--user", "bob")
    assert "no user nobody" in fails(cli, config, "sessions", "revoke", "--user", "nobody")


def test_an_expired_sign_in_leaves_the_listing(cli: typer.Typer, config: Path) -> None:
    state = SqliteKV(config.parent / "state" / "signin.sqlite3")
    record = sessions.SignInRecord(
        "sid-short", "alice", time.time(), time.time() + 0.3, ("pwd",), "-"
    )
    asyncio.run(sessions.record_sign_in(state, record))
    assert "sid-short" in invoke(cli, config, "sessions", "list")
    deadline = time.monotonic() + 10
    while "sid-short" in invoke(cli, config, "sessions", "list"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_users_file_on_a_read_only_mount_is_one_clear_line(
    cli: typer.Typer, config: Path
) -> None:
    """As in a container whose /etc/warren is mounted read-only: no traceback, nothing lost."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        reason = "needs root and unshare (util-linux) for a read-only bind mount"
        if in_ci():
            pytest.fail(f"CI must run this, but it {reason}")
        pytest.skip(reason)
    invoke(cli, config, "user", "add", "alice", stdin="s3cret pass\ns3cret pass\n")
    users = config.parent / "users.yaml"
    before = users.read_bytes()
    mounted = 'mount --bind -o ro "$0" "$0" && shift && exec "$@"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mounted, str(config.parent),
         "--", sys.executable, "-m", "core", "user", "add", "bob", "--password-stdin",
         "--config", str(config)],
        input="s3cret pass\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == (
        f"error: {users}: cannot write: Read-only file system (users_file must be on a "
        "writable file system: in a container, a volume such as /var/lib/warren)\n"
    )
    assert users.read_bytes() == before
