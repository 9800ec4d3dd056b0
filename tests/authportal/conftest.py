"""A node with sign-in on loopback: a real gateway and a real portal process, the portal reached
through the gateway as browsers reach it, in front of the recording backend."""

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.auth.users import User, UsersFile, hash_secret, update
from demo import processes
from tests.conftest import Backend
from tests.support.browser import Browser

PASSWORD = "correct horse battery"


def policy(portal_port: int, backend_port: int, extra: str = "") -> str:
    target = f"[{{host: 127.0.0.1, port: {backend_port}}}]"
    return f"""\
version: 1
resources:
  portal:
    host: auth.localhost
    auth: public
    targets: [{{host: 127.0.0.1, port: {portal_port}}}]
  app:
    host: app.localhost
    targets: {target}
  wiki:
    host: wiki.localhost
    targets: {target}
  ops:
    host: ops.localhost
    auth: {{groups: [ops]}}
    targets: {target}
  whitelisted:
    host: www.whitelisteddomain.tld
    targets: {target}
{extra}"""


@dataclass
class Node:
    port: int
    portal_port: int
    directory: Path
    processes: list[Any]

    @property
    def config(self) -> Path:
        return self.directory / "warren.yaml"

    @property
    def portal(self) -> str:
        return f"http://auth.localhost:{self.port}"

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def browser(self) -> Browser:
        return Browser(self.port)

    def add_user(self, name: str, *, groups: tuple[str, ...] = (), totp: str | None = None) -> None:
        user = User(
            password=hash_secret(PASSWORD), email=f"{name}@example.com", groups=groups, totp=totp
        )
        update(
            self.directory / "users.yaml",
            lambda users: UsersFile(users={**users.users, name: user}),
        )

    def warren(self, *args: str, stdin: str = "") -> str:
        import subprocess

        done = subprocess.run(
            [*processes.warren(*args), "--config", str(self.config)],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def logs(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.directory.glob("*.log"))
        )


NodeFactory = Callable[..., Node]


@pytest.fixture
def start_node(
    tmp_path: Path, backend: Backend, request: pytest.FixtureRequest
) -> Iterator[NodeFactory]:
    started: list[Node] = []

    def start(extra_policy: str = "", settings: str = "", name: str = "node") -> Node:
        directory = tmp_path / name
        directory.mkdir()
        port, portal_port = processes.free_port(), processes.free_port()
        (directory / "policy.yaml").write_text(policy(portal_port, backend.port, extra_policy))
        (directory / "warren.yaml").write_text(
            f"public_url: http://auth.localhost:{port}\n"
            f"listen: 127.0.0.1:{port}\n"
            "policy_file: policy.yaml\nusers_file: users.yaml\nstate_dir: state\n"
            f"portal: {{listen: 127.0.0.1:{portal_port}}}\nreload_poll: 0.2s\n{settings}"
        )
        config = str(directory / "warren.yaml")
        node = Node(port, portal_port, directory, [])
        started.append(node)
        for kind, listening in (("gateway", port), ("portal", portal_port)):
            process = processes.start(
                processes.warren(kind, "--config", config),
                log=directory / f"{kind}.log",
                cwd=directory,
            )
            node.processes.append(process)
            try:
                processes.wait_for_port(listening, process, timeout=60)
            except (RuntimeError, TimeoutError):
                pytest.fail(f"{kind} did not start:\n{node.logs()}")
        return node

    yield start
    report = getattr(request.node, "rep_call", None)
    for node in started:
        for process in node.processes:
            processes.stop(process)
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- logs of {node.directory} ---\n{node.logs()[-6000:]}\n")


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in:\n{html[:2000]}"
    return found.group(1)
