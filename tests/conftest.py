"""Real processes on loopback: the demo backend, and gateways started two ways."""

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo import processes

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


@dataclass
class Backend:
    port: int

    def records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"http://127.0.0.1:{self.port}/.records").json()
        return records

    def received(self, marker: str) -> list[dict[str, Any]]:
        """What arrived whose target contains `marker` (tests use unique paths)."""
        return [r for r in self.records() if marker in r["target"]]


@pytest.fixture(scope="session")
def backend() -> Iterator[Backend]:
    port = processes.free_port()
    process = processes.start(processes.backend(port, "backend"))
    processes.wait_for_port(port, process)
    yield Backend(port)
    processes.stop(process)


@dataclass
class Gateway:
    port: int
    directory: Path
    process: Any
    log: Path

    @property
    def policy(self) -> Path:
        return self.directory / "policy.yaml"

    @property
    def config(self) -> Path:
        return self.directory / "warren.yaml"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10, **kwargs)

    def get(self, host: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.get(path, headers={"host": host, **kwargs.pop("headers", {})}, **kwargs)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


GatewayFactory = Callable[..., Gateway]


def mitmdump() -> list[str]:
    return [str(Path(sys.executable).parent / "mitmdump")]


@pytest.fixture
def start_gateway(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def start(
        policy: str,
        *,
        kind: str = "warren",
        env: dict[str, str] | None = None,
        settings: str = "",
        name: str = "gw",
    ) -> Gateway:
        directory = tmp_path / name
        directory.mkdir()
        port = processes.free_port()
        (directory / "policy.yaml").write_text(policy)
        poll = "" if "reload_poll:" in settings else "reload_poll: 0.2s\n"
        (directory / "warren.yaml").write_text(
            f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\n"
            f"{poll}{settings}"
        )
        config = str(directory / "warren.yaml")
        if kind == "warren":
            args = processes.warren("gateway", "--config", config)
        else:
            # The command from the README. mitmdump starts its default listener before loading
            # scripts; keep that one on loopback and off any port another test might hold.
            args = [
                *mitmdump(),
                "-s",
                str(ROOT / "addons" / "warren.py"),
                "--set",
                f"warren_config={config}",
                "--set",
                f"confdir={directory / 'mitm'}",
                "--set",
                "listen_host=127.0.0.1",
                "--set",
                f"listen_port={processes.free_port()}",
            ]
        log = directory / "gateway.log"
        process = processes.start(args, log=log, env=env, cwd=directory)
        gateway = Gateway(port, directory, process, log)
        started.append(gateway)
        try:
            processes.wait_for_port(port, process)
        except (RuntimeError, TimeoutError):
            pytest.fail(f"gateway did not start:\n{gateway.logs()}")
        return gateway

    yield start
    failed = getattr(request.node, "rep_call", None)
    for gateway in started:
        processes.stop(gateway.process)
        if failed is not None and failed.failed:
            sys.stderr.write(f"\n--- {gateway.log} ---\n{gateway.logs()[-5000:]}\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def eventually[T](check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Wait for a condition instead of a fixed time: `check` returns a truthy value or raises."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
