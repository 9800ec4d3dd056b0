"""`warren init`, run as people run it (a process; without a terminal, and on one through a
pseudo-terminal): what it writes passes `warren check`, a gateway starts from it and answers,
and it refuses to replace files or to guess what it was not told."""

import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.auth.users import authenticate, load_users
from demo import processes
from tests.support.ci import in_ci

FLAGS = ["--domain", "example.com", "--email", "admin@example.com", "--ipv4", "192.0.2.10"]


@dataclass
class Node:
    directory: Path
    output: str

    @property
    def etc(self) -> Path:
        return self.directory / "etc"


def init_command(directory: Path, *args: str) -> list[str]:
    return processes.warren(
        "init", "--dir", str(directory / "etc"), "--units-dir", str(directory / "units"), *args
    )


def init(directory: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Without a terminal: stdin is a pipe."""
    command = init_command(directory, *args)
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def warren(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(processes.warren(*args), capture_output=True, text=True, timeout=120)


def shown_password(output: str) -> str:
    line = next(line for line in output.splitlines() if "password, shown this once:" in line)
    return line.rpartition(": ")[2]


def contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*.*")}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    directory = tmp_path_factory.mktemp("node")
    done = init(directory, *FLAGS)
    assert done.returncode == 0, done.stderr
    return Node(directory, done.stdout)


def test_it_writes_the_node_files_and_units_with_private_modes(node: Node) -> None:
    for name, mode in [
        ("warren.yaml", 0o640),
        ("policy.yaml", 0o640),
        ("users.yaml", 0o600),
        ("site", 0o700),
        ("site/home.secret", 0o600),
        ("site/warren-site.service", 0o644),
    ]:
        assert (node.etc / name).stat().st_mode & 0o777 == mode, name
    units = sorted(path.name for path in (node.directory / "units").iterdir())
    assert units == ["warren-gateway.service", "warren-portal.service", "warren-sidecar.service"]
    unit = (node.directory / "units" / "warren-gateway.service").read_text()
    executable = Path(sys.executable).parent / "warren"  # the warren of this environment
    assert f"ExecStart={executable} gateway --config {node.etc / 'warren.yaml'}\n" in unit


def test_warren_check_accepts_what_it_wrote(node: Node) -> None:
    done = warren("check", str(node.etc / "warren.yaml"), str(node.etc / "policy.yaml"))
    assert done.returncode == 0, done.stderr
    assert "policy.yaml: ok (3 resources" in done.stdout


def test_the_admin_signs_in_with_the_password_shown_once(node: Node) -> None:
    users = load_users(node.etc / "users.yaml")
    admin = authenticate(users, "admin", shown_password(node.output))
    assert admin is not None
    assert (admin.email, admin.groups) == ("admin@example.com", ("admins",))


def test_it_prints_dns_records_ports_the_start_line_and_the_home_servers_command(
    node: Node,
) -> None:
    for printed in [
        "*.example.com.     A     192.0.2.10",
        "auth.example.com.  A     192.0.2.10",
        "wg.example.com.    A     192.0.2.10                # DNS only, never proxied",
        "443/tcp",
        "80/tcp",
        "51820/udp",
        "systemctl enable --now warren-sidecar warren-portal warren-gateway",
        "useradd --system --user-group --home-dir /var/lib/warren",
        "install -D -m 0600 site/home.secret /etc/warren-site/home.secret",
        "systemctl daemon-reload && systemctl enable --now warren-site",
        "warren site --node https://auth.example.com --site home "
        "--secret-file /etc/warren-site/home.secret",
    ]:
        assert printed in node.output


@contextmanager
def gateway_from(node: Node, state: Path) -> Iterator[dict[str, int]]:
    """A gateway on init's warren.yaml, its listeners moved to free loopback ports, its state to
    `state`, and its ACME directory to a loopback port that accepts and never answers: a test
    reaches nothing else, and the CA's silence outlasts the test. (A CA that refuses at once
    makes the gateway log an error while mitmproxy still counts start-up errors as fatal.)"""
    ports = {"https": processes.free_port(), "http": processes.free_port()}
    silent = socket.create_server(("127.0.0.1", 0))
    env = {
        "WARREN_LISTEN": f"127.0.0.1:{ports['https']}",
        "WARREN_HTTP_LISTEN": f"127.0.0.1:{ports['http']}",
        "WARREN_STATE_DIR": str(state),
        "WARREN_ACME__DIRECTORY": f"https://127.0.0.1:{silent.getsockname()[1]}/directory",
    }
    log = state.parent / "gateway.log"
    command = processes.warren("gateway", "--config", str(node.etc / "warren.yaml"))
    gateway = processes.start(command, log=log, env=env)
    try:
        processes.wait_for_port(ports["https"], gateway)
        processes.wait_for_port(ports["http"], gateway)
        yield ports
    except (RuntimeError, TimeoutError):
        pytest.fail(f"no gateway from init's files:\n{log.read_text()}")
    finally:
        processes.stop(gateway)
        silent.close()


def test_a_gateway_starts_from_them_and_answers(node: Node, tmp_path: Path) -> None:
    with gateway_from(node, tmp_path / "state") as ports:
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['https']}", timeout=10) as client:
            browser = {"host": "app.example.com", "accept": "text/html"}
            signin = client.get("/dash", headers=browser)
            public = client.get("/", headers={"host": "www.example.com"})
            denied = client.get("/admin/x", headers={"host": "www.example.com"})
        plain = httpx.get(
            f"http://127.0.0.1:{ports['http']}/x", headers={"host": "www.example.com"}
        )
    assert signin.status_code == 302
    assert signin.headers["location"].startswith("https://auth.example.com/sign-in?rd=")
    assert public.status_code == 503  # routed to the home site, which has not joined yet
    assert denied.status_code == 403
    assert plain.status_code == 308
    assert plain.headers["location"].startswith("https://www.example.com")


def test_warren_site_add_extends_its_policy(tmp_path: Path) -> None:
    assert init(tmp_path, *FLAGS).returncode == 0
    etc = tmp_path / "etc"
    secret = etc / "site" / "office.secret"
    added = warren("site", "add", "office", "-c", str(etc / "warren.yaml"), "-o", str(secret))
    assert added.returncode == 0, added.stderr
    assert f"site office added to {etc / 'policy.yaml'}" in added.stderr
    assert warren("check", str(etc / "warren.yaml")).returncode == 0


def test_it_refuses_to_replace_files_unless_forced(tmp_path: Path) -> None:
    assert init(tmp_path, *FLAGS).returncode == 0
    etc = tmp_path / "etc"
    bob = subprocess.run(
        processes.warren("user", "add", "bob", "--password-stdin", "-c", str(etc / "warren.yaml")),
        input="bobs password\n",
        capture_output=True,
        text=True,
    )
    assert bob.returncode == 0, bob.stderr
    before = contents(tmp_path)

    again = init(tmp_path, *FLAGS)
    assert again.returncode == 1
    assert f"error: {etc / 'users.yaml'}, {etc / 'site' / 'home.secret'}" in again.stderr
    assert "already there; nothing was written. Pass --force" in again.stderr
    assert contents(tmp_path) == before

    forced = init(tmp_path, *FLAGS, "--force")
    assert forced.returncode == 0, forced.stderr
    users = load_users(etc / "users.yaml")
    assert authenticate(users, "admin", shown_password(forced.stdout)) is not None
    assert authenticate(users, "bob", "bobs password") is not None  # kept
    assert (etc / "policy.yaml").read_bytes() != before["etc/policy.yaml"]  # a new site secret
    assert warren("check", str(etc / "warren.yaml")).returncode == 0


def test_a_missing_flag_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    done = init(tmp_path, "--domain", "example.com")
    assert done.returncode == 2
    assert "error: --email is needed (there is no terminal to ask on)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path / "units").exists()


def test_a_flag_that_does_not_check_out_is_refused(tmp_path: Path) -> None:
    done = init(tmp_path, "--domain", "exa mple.com", "--email", "admin@example.com")
    assert done.returncode == 1
    assert "error: --domain: 'exa mple.com' is not a host name (letters, digits" in done.stderr
    assert not (tmp_path / "etc").exists()


class Terminal:
    """A process on a pseudo-terminal of its own, as when someone runs it in a shell."""

    def __init__(self, command: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: nothing but exec
            os.execvpe(command[0], command, os.environ)  # noqa: S606
        self.output = ""
        self._read_up_to = 0

    def expect(self, text: str, timeout: float = 60) -> None:
        """Until `text` appears after what was expected before."""
        deadline = time.monotonic() + timeout
        while text not in self.output[self._read_up_to :]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} on the terminal:\n{self.output}"
            if select.select([self.fd], [], [], remaining)[0] and not self._read():
                raise AssertionError(f"the process ended before {text!r}:\n{self.output}")
        self._read_up_to = self.output.index(text, self._read_up_to) + len(text)

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def finish(self) -> int:
        while self._read():
            pass
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])

    def _read(self) -> bool:
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the other side is closed
            return False
        self.output += data.decode(errors="replace")
        return bool(data)


def test_on_a_terminal_it_asks_for_what_is_missing(tmp_path: Path) -> None:
    terminal = Terminal(init_command(tmp_path))
    for prompt, answer in [
        ("Domain (applications get names below it):", "not a domain"),
        ("again, please", ""),
        ("Domain (applications get names below it):", "example.com"),
        ("E-mail (the ACME account's contact, and the admin's):", "admin@example.com"),
        ("Name of the first admin [admin]:", ""),
        ("Name of the home server's site [home]:", ""),
        ("sites send WireGuard to [wg.example.com]:", ""),
        ("public IPv4 address (empty: a placeholder):", "192.0.2.10"),
        ("public IPv6 address (empty: none):", "2001:db8::10"),
        # getpass turns echo off, discarding what was typed, before it writes the prompt's
        # last space: typing after that space never races it.
        ("Password for admin: ", "short"),
        ("Repeat for confirmation: ", "short"),
        ("a password needs at least 8 characters; again, please.", ""),
        ("Password for admin: ", "correct horse battery"),
        ("Repeat for confirmation: ", "correct horse battery"),
    ]:
        terminal.expect(prompt)
        if answer or prompt.rstrip().endswith(":"):
            terminal.type(answer)
    assert terminal.finish() == 0, terminal.output
    assert "auth.example.com.  AAAA  2001:db8::10" in terminal.output
    assert "shown this once" not in terminal.output
    users = load_users(tmp_path / "etc" / "users.yaml")
    assert authenticate(users, "admin", "correct horse battery") is not None


def test_the_files_go_to_the_services_account(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI must run this test as root (it gives files to another account)")
        pytest.skip("needs root to give files to another account")
    import pwd

    nobody = pwd.getpwnam("nobody")
    done = init(tmp_path, *FLAGS, "--user", "nobody")
    assert done.returncode == 0, done.stderr
    etc = tmp_path / "etc"
    owners = {
        name: (path.stat().st_uid, path.stat().st_gid)
        for name in ("", "warren.yaml", "policy.yaml", "users.yaml", "site/home.secret")
        for path in [etc / name]
    }
    assert owners == {
        "": (0, nobody.pw_gid),
        "warren.yaml": (0, nobody.pw_gid),
        "policy.yaml": (0, nobody.pw_gid),
        "users.yaml": (nobody.pw_uid, nobody.pw_gid),
        "site/home.secret": (0, 0),
    }
    assert "chown" not in done.stdout  # nothing left to hand over
    assert "User=nobody\n" in (tmp_path / "units" / "warren-gateway.service").read_text()


def test_the_admins_password_may_come_from_stdin(tmp_path: Path) -> None:
    short = init(tmp_path, *FLAGS, "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "error: --password-stdin: a password needs at least 8 characters" in short.stderr
    assert not (tmp_path / "etc").exists()
    done = init(tmp_path, *FLAGS, "--password-stdin", stdin="correct horse battery\n")
    assert done.returncode == 0, done.stderr
    assert "shown this once" not in done.stdout
    users = load_users(tmp_path / "etc" / "users.yaml")
    assert authenticate(users, "admin", "correct horse battery") is not None
