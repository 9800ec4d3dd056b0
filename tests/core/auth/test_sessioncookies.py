"""`core.auth.sessioncookies`: a header's session is remembered, and nothing that should end or
change it is: revocation, users.yaml, expiry, the keys trusted."""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.auth import sessions
from core.auth.identity import Identity
from core.auth.sessioncookies import SessionCookies
from core.auth.signing import KeyRing
from core.auth.signinstate import SqliteKV
from core.auth.tokens import mint
from core.auth.users import User, UsersFile, UsersSource, save_users
from core.auth.verifier import Verifier
from tests.support.waiting import eventually

ISSUER = "https://auth.example.com"
HOST = "app.example.com"
NAME = "warren_session"


@dataclass
class Node:
    keys: KeyRing
    kv: SqliteKV
    users_file: Path
    cookies: SessionCookies

    def set_user(self, groups: tuple[str, ...], disabled: bool = False) -> None:
        user = User(
            password="$argon2id$", email="alice@example.com", groups=groups, disabled=disabled
        )
        save_users(self.users_file, UsersFile(users={"alice": user}))

    def token(self, sid: str = "s1", lifetime: float = 3600, now: float | None = None) -> str:
        return mint(
            self.keys, use="session", issuer=ISSUER, audience=HOST, subject="alice",
            lifetime=lifetime, claims={"sid": sid, "groups": ["ops"]}, now=now,
        )  # fmt: skip

    def who(self, header: str, name: str = NAME) -> Identity | None:
        return asyncio.run(self.cookies.identity(self.kv, header, name, HOST))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    keys = KeyRing(tmp_path / "keys")
    keys.ensure()
    users_file = tmp_path / "users.yaml"
    kv = SqliteKV(tmp_path / "signin.sqlite3")
    made = Node(
        keys, kv, users_file, SessionCookies(Verifier(keys, ISSUER), UsersSource(users_file))
    )
    made.set_user(("ops",))
    yield made
    asyncio.run(kv.close())


def test_the_header_signs_in_again_and_again(node: Node) -> None:
    header = f"theme=dark; {NAME}={node.token()}"
    for _ in range(3):
        found = node.who(header)
        assert found is not None
        assert (found.subject, found.groups, found.session_id) == ("alice", ("ops",), "s1")


def test_another_cookie_name_is_another_question(node: Node) -> None:
    header = f"{NAME}={node.token()}"
    assert node.who(header) is not None
    assert node.who(header, "__Host-warren_session") is None


def test_a_revocation_ends_a_remembered_session_at_the_next_request(node: Node) -> None:
    header = f"{NAME}={node.token('s1')}"
    assert node.who(header) is not None
    asyncio.run(sessions.revoke_session(node.kv, "s1", time.time() + 3600))
    assert node.who(header) is None
    other = f"{NAME}={node.token('s2')}"
    assert node.who(other) is not None
    asyncio.run(sessions.revoke_user(node.kv, "alice", 3600))  # every sign-in until now
    assert node.who(other) is None


def test_users_yaml_as_it_is_now_decides(node: Node) -> None:
    header = f"{NAME}={node.token()}"
    assert node.who(header) is not None
    node.set_user(("ops", "dev"))
    found = node.who(header)
    assert found is not None
    assert found.groups == ("ops", "dev")
    node.set_user(("ops",), disabled=True)
    assert node.who(header) is None


def test_a_remembered_session_ends_when_its_token_expires(node: Node) -> None:
    header = f"{NAME}={node.token(lifetime=3600, now=time.time() - 3599.7)}"
    assert node.who(header) is not None
    assert eventually(lambda: node.who(header) is None)  # the token's exp is 0.3 s away


def test_a_header_too_long_to_remember_still_signs_in(node: Node) -> None:
    header = f"big={'x' * 5000}; {NAME}={node.token()}"
    assert node.who(header) is not None
    assert node.who(header) is not None
