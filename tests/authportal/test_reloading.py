"""A real `warren portal` keeps policy.yaml current the way the gateway and the sidecar do: on a
change to the file, on SIGHUP and on `reload` over its own socket, state_dir/portal.sock. The
policy decides where it may send a signed-in browser back to, so that is what is watched."""

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core import control
from demo import processes


def policy(*hosts: str) -> str:
    resources = "".join(
        f"  {host}:\n    host: {host}.localhost\n    targets: [{{host: 127.0.0.1, port: 9}}]\n"
        for host in hosts
    )
    return f"version: 1\nresources:\n{resources}"


def within(seconds: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s"
        time.sleep(0.05)


@dataclass
class Portal:
    directory: Path
    process: subprocess.Popen[bytes]
    port: int
    gateway_port: int

    @property
    def socket(self) -> Path:
        return control.portal_socket(self.directory / "state")

    def write_policy(self, *hosts: str) -> None:
        (self.directory / "policy.yaml").write_text(policy(*hosts))

    def may_send_back_to(self, host: str) -> bool:
        """Whether the sign-in page takes `host` as where to go afterwards (400 when not)."""
        rd = f"http://{host}.localhost:{self.gateway_port}/"
        answer = httpx.get(
            f"http://127.0.0.1:{self.port}/sign-in",
            params={"rd": rd},
            headers={"host": f"auth.localhost:{self.gateway_port}"},
        )
        assert answer.status_code in (200, 400), answer.text
        return answer.status_code == 200

    def logs(self) -> str:
        return (self.directory / "portal.log").read_text(errors="replace")


def start_portal(directory: Path, reload_poll: str) -> Portal:
    port, gateway_port = processes.free_port(), processes.free_port()
    (directory / "policy.yaml").write_text(policy("app"))
    (directory / "warren.yaml").write_text(
        f"public_url: http://auth.localhost:{gateway_port}\nlisten: 127.0.0.1:{gateway_port}\n"
        "policy_file: policy.yaml\nusers_file: users.yaml\nstate_dir: state\n"
        f"portal: {{listen: 127.0.0.1:{port}}}\nreload_poll: {reload_poll}\n"
    )
    process = processes.start(
        processes.warren("portal", "--config", str(directory / "warren.yaml")),
        log=directory / "portal.log",
        cwd=directory,
    )
    processes.wait_for_port(port, process, timeout=60)
    return Portal(directory, process, port, gateway_port)


@pytest.fixture
def portals(tmp_path: Path) -> Iterator[Callable[[str], Portal]]:
    started: list[Portal] = []

    def start(reload_poll: str) -> Portal:
        portal = start_portal(tmp_path, reload_poll)
        started.append(portal)
        return portal

    yield start
    for portal in started:
        processes.stop(portal.process)


def test_an_edit_to_the_policy_reaches_the_portal(portals: Callable[[str], Portal]) -> None:
    portal = portals("0.2s")
    assert portal.may_send_back_to("app")
    assert not portal.may_send_back_to("new")
    portal.write_policy("app", "new")
    within(10, lambda: portal.may_send_back_to("new"))


def test_sighup_reloads_the_portal(portals: Callable[[str], Portal]) -> None:
    portal = portals("1h")
    portal.write_policy("app", "new")
    assert not portal.may_send_back_to("new")  # nothing reloads by itself here
    portal.process.send_signal(signal.SIGHUP)
    within(10, lambda: portal.may_send_back_to("new"))
    assert portal.process.poll() is None


def test_the_portal_reloads_on_its_socket_and_keeps_the_last_good_policy(
    portals: Callable[[str], Portal],
) -> None:
    portal = portals("1h")
    within(10, portal.socket.is_socket)
    assert portal.socket.stat().st_mode & 0o777 == 0o600
    portal.write_policy("app", "new")
    reply = control.call(portal.socket, "reload")
    assert reply["ok"] is True
    assert portal.may_send_back_to("new")

    (portal.directory / "policy.yaml").write_text("version: 1\nresources: {app: {host: [}\n")
    refused = control.call(portal.socket, "reload")
    assert (refused["ok"], refused["digest"]) == (False, reply["digest"])
    assert "not valid YAML" in refused["error"]
    assert portal.may_send_back_to("new")  # the last good policy keeps deciding
    status = control.call(portal.socket, "status")
    assert (status["digest"], status["failed_reloads"]) == (reply["digest"], 1)
    assert "policy reload refused" in portal.logs()

    processes.stop(portal.process)
    assert not portal.socket.exists()


def test_warren_reload_reaches_the_portal_too(portals: Callable[[str], Portal]) -> None:
    portal = portals("1h")
    within(10, portal.socket.is_socket)
    portal.write_policy("app", "new")
    done = subprocess.run(
        processes.warren("reload", "--config", str(portal.directory / "warren.yaml")),
        capture_output=True,
        text=True,
    )
    assert "portal: policy " in done.stdout
    assert portal.may_send_back_to("new")
    # No gateway runs here: that is still an error, and the only one (no sidecar is not).
    assert done.returncode == 1
    assert "no gateway answers on" in done.stderr
    assert "sidecar" not in done.stdout + done.stderr
