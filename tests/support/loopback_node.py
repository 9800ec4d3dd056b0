"""A node with sign-in on loopback: a real gateway and a real portal process, the portal reached
through the gateway as browsers reach it, in front of the recording backend."""

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.auth.users import User, UsersFile, hash_secret, update
from demo import processes
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
class LoopbackNode:
    port: int
    portal_port: int
    directory: Path
    processes: list[Any]
    address: str = "127.0.0.1"  # several nodes: one loopback address each, the same ports

    @property
    def config(self) -> Path:
        return self.directory / "warren.yaml"

    @property
    def portal(self) -> str:
        return f"http://auth.localhost:{self.port}"

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def browser(self) -> Browser:
        return Browser(self.port, self.address)

    def add_user(self, name: str, *, groups: tuple[str, ...] = (), totp: str | None = None) -> None:
        user = User(
            password=hash_secret(PASSWORD), email=f"{name}@example.com", groups=groups, totp=totp
        )
        update(
            self.directory / "users.yaml",
            lambda users: UsersFile(users={**users.users, name: user}),
        )

    def warren(self, *args: str, stdin: str = "") -> str:
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

    def stop(self) -> None:
        for process in self.processes:
            processes.stop(process)


LoopbackNodeFactory = Callable[..., LoopbackNode]


def prepare(
    directory: Path,
    backend_port: int,
    extra_policy: str = "",
    settings: str = "",
    *,
    address: str = "127.0.0.1",
    ports: tuple[int, int] | None = None,
) -> LoopbackNode:
    """The node's files, written into `directory`; `start` runs it. `address` and `ports`
    (gateway, portal) place several nodes on one machine as DNS places them on several."""
    directory.mkdir()
    port, portal_port = ports or (processes.free_port(), processes.free_port())
    (directory / "policy.yaml").write_text(policy(portal_port, backend_port, extra_policy))
    (directory / "warren.yaml").write_text(
        f"public_url: http://auth.localhost:{port}\n"
        f"listen: {address}:{port}\n"
        "policy_file: policy.yaml\nusers_file: users.yaml\nstate_dir: state\n"
        f"portal: {{listen: {address}:{portal_port}}}\nreload_poll: 0.2s\n{settings}"
    )
    return LoopbackNode(port, portal_port, directory, [], address)


def start(node: LoopbackNode) -> None:
    """Start the node's gateway and portal; listening when this returns (RuntimeError or
    TimeoutError naming the process that never did)."""
    for kind, listening in (("gateway", node.port), ("portal", node.portal_port)):
        process = processes.start(
            processes.warren(kind, "--config", str(node.config)),
            log=node.directory / f"{kind}.log",
            cwd=node.directory,
        )
        node.processes.append(process)
        try:
            processes.wait_for_port(listening, process, timeout=60, host=node.address)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{kind} did not start: {error}") from error
