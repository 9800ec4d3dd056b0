"""The admin operations the command line and the console share, on a real users.yaml and the
node's real sign-in state (SQLite), and the check that both callers go through them."""

import ast
import asyncio
import logging
import time
from pathlib import Path

import pytest

from authportal import manage
from core.auth import sessions
from core.auth.signinstate import SqliteKV
from core.auth.users import User, UsersFile, hash_secret, load_users, update
from core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    (tmp_path / "warren.yaml").write_text(
        "policy_file: policy.yaml\nusers_file: users.yaml\nstate_dir: state\n"
    )
    user = User(password=hash_secret("a password"), groups=("ops",))
    update(tmp_path / "users.yaml", lambda _: UsersFile(users={"alice": user, "bob": user}))
    return load_settings(tmp_path / "warren.yaml")


def users(settings: Settings) -> dict[str, User]:
    return load_users(settings.users_file).users


def test_users_are_disabled_enabled_and_regrouped(settings: Settings) -> None:
    kv = SqliteKV(settings.state_dir / "signin.sqlite3")
    before = time.time() - 1

    asyncio.run(manage.disable_user(settings, kv, "alice"))
    assert users(settings)["alice"].disabled
    assert asyncio.run(sessions.revoked(kv, None, "alice", before))  # their sign-ins ended
    assert not users(settings)["bob"].disabled
    manage.enable_user(settings, "alice")
    assert not users(settings)["alice"].disabled

    assert manage.regroup(settings, "alice", groups=" ops, dev ,,ops").groups == ("ops", "dev")
    assert manage.regroup(settings, "alice", add="web", remove="ops").groups == ("dev", "web")
    assert manage.regroup(settings, "alice", groups="").groups == ()
    for mistake, said in (
        ({"groups": "a", "add": "b"}, "not both"),
        ({"remove": "ops"}, "alice is not in ops"),
        ({"add": "b@d"}, "not a group name"),
    ):
        with pytest.raises(manage.Refused, match=said):
            manage.regroup(settings, "alice", **mistake)
    assert users(settings)["alice"].groups == ()  # a refused change changed nothing
    with pytest.raises(manage.Refused, match="no user carol"):
        manage.enable_user(settings, "carol")


def test_sessions_and_share_links_are_revoked(settings: Settings) -> None:
    kv = SqliteKV(settings.state_dir / "signin.sqlite3")
    now = time.time()

    async def scenario() -> None:
        for sid, user in (("s1", "alice"), ("s2", "alice"), ("s3", "bob")):
            record = sessions.SignInRecord(sid, user, now, now + 600, ("pwd",), "192.0.2.1")
            await sessions.record_sign_in(kv, record)
        assert (await manage.revoke_session(kv, "s3")).user == "bob"
        with pytest.raises(manage.Refused, match="no active sign-in 's3'"):
            await manage.revoke_session(kv, "s3")
        assert await manage.revoke_sessions_of(settings, kv, "alice") == 2
        assert await manage.active_sessions(kv) == []
        with pytest.raises(manage.Refused, match="no user nobody"):
            await manage.revoke_sessions_of(settings, kv, "nobody")

        link = sessions.ShareRecord("Ab_3-x", "app", "app.example", "/", now, now + 600)
        await manage.record_share(kv, link)
        assert await manage.active_shares(kv) == [link]
        await manage.revoke_share(kv, "Ab_3-x")
        await manage.revoke_share(kv, "never-listed")  # an old link: still revocable by id
        assert await manage.active_shares(kv) == []
        assert await sessions.share_revoked(kv, "never-listed")
        with pytest.raises(manage.Refused, match="not a share link id"):
            await manage.revoke_share(kv, "not an id")

    asyncio.run(scenario())


# What changes users.yaml or the sign-in state; only authportal.manage may call these.
_CHANGES = {"update", "revoke_session", "revoke_user", "revoke_share", "record_share"}


def test_each_change_is_a_log_event_saying_who_made_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    kv = SqliteKV(settings.state_dir / "signin.sqlite3")
    with caplog.at_level(logging.INFO, logger="warren.admin"):
        asyncio.run(manage.disable_user(settings, kv, "alice", by="console:root"))
        manage.enable_user(settings, "alice")
        manage.regroup(settings, "bob", add="dev", by="console:root")
        asyncio.run(manage.revoke_share(kv, "link-1", by="console:root"))
    said = [
        (record.getMessage(), getattr(record, "warren_fields", None)) for record in caplog.records
    ]
    assert said == [
        ("user-disabled", {"user": "alice", "by": "console:root"}),
        ("user-enabled", {"user": "alice", "by": "command-line"}),
        ("user-groups-changed", {"user": "bob", "groups": ["ops", "dev"], "by": "console:root"}),
        ("share-revoked", {"link": "link-1", "by": "console:root"}),
    ]


def test_the_command_line_and_the_console_change_things_only_through_manage() -> None:
    callers = [ROOT / "authportal" / "admin.py", ROOT / "authportal" / "signins.py"]
    callers += sorted((ROOT / "authportal" / "console").glob("*.py"))
    direct = []
    for path in callers:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("core.auth.users", "core.auth"):
                direct += [
                    f"{path.name}: imports {a.name}" for a in node.names if a.name in _CHANGES
                ]
            if (
                isinstance(node, ast.Attribute)
                and node.attr in _CHANGES
                and isinstance(node.value, ast.Name)
                and node.value.id in ("sessions", "users")
            ):
                direct.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert direct == []
