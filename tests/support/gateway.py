"""A gateway process on loopback, started two ways: `warren gateway`, or mitmdump with the pack
as the README shows."""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from demo import processes

ROOT = Path(__file__).resolve().parent.parent.parent


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


def launch(
    directory: Path,
    policy: str,
    *,
    kind: str = "warren",
    env: dict[str, str] | None = None,
    settings: str = "",
) -> Gateway:
    """Write policy.yaml and warren.yaml into `directory` and start a gateway on them; it is
    started, not yet listening (see `wait`)."""
    directory.mkdir()
    port = processes.free_port()
    (directory / "policy.yaml").write_text(policy)
    poll = "" if "reload_poll:" in settings else "reload_poll: 0.2s\n"
    (directory / "warren.yaml").write_text(
        f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\n{poll}{settings}"
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
    return Gateway(port, directory, process, log)


def wait(gateway: Gateway) -> None:
    """Until the gateway listens; RuntimeError or TimeoutError if it never does."""
    processes.wait_for_port(gateway.port, gateway.process)


def stop(gateway: Gateway) -> None:
    processes.stop(gateway.process)
