"""The Warren pack in-process with sign-in configured, and tokens made as the portal makes them."""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import taddons

from addons.pack import warren_addons
from addons.runtime import Runtime
from core.auth import sessions
from core.auth.keys import KeyRing
from core.auth.kv import SqliteKV
from core.auth.tokens import mint, new_id

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


@dataclass
class Node:
    context: taddons.context
    runtime: Runtime
    state: Path

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
def node(tmp_path: Path, policy: str = POLICY, settings: str = "") -> Iterator[Node]:
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "warren.yaml").write_text(
        f"public_url: {PORTAL}\npolicy_file: policy.yaml\nstate_dir: state\n{settings}"
    )
    runtime = Runtime()
    (warren,) = warren_addons(runtime)
    with taddons.context(warren) as context:
        context.configure(warren, warren_config=str(tmp_path / "warren.yaml"))
        yield Node(context, runtime, tmp_path / "state")


def header(made: http.HTTPFlow, name: str) -> str | None:
    return made.request.headers.get(name)
