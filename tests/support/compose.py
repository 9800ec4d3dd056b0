"""docker/compose.yaml and compose.site.yaml as podman runs them, for the container tests.

`docker-compose config` (Debian's 1.29, no daemon needed) resolves a file: anchors merged,
variables filled in, paths made absolute. Each service of the result becomes one `podman run`
with the same user, capabilities, devices, sysctls, mounts, read-only root, tmpfs, security
options, command and health check, so what the tests start is what the file declares. Only
networking is the test's: a service's own namespace is one the test made (it stands in for
the published ports and for `network_mode: host`), and `service:NAME` joins NAME's container.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.podman import podman


def config(compose_file: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        ["docker-compose", "--file", str(compose_file), "config"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"docker-compose config {compose_file}: {done.stderr}")
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def available() -> str | None:
    if shutil.which("docker-compose") is None:
        return "needs docker-compose (Debian package docker-compose; ./dev test installs it)"
    return None


def _unescaped(value: str) -> str:
    """`config` keeps `$$` (a literal `$` in compose files) as written."""
    return value.replace("$$", "$")


def _health(check: Mapping[str, Any]) -> list[str]:
    kind, *test = check["test"]
    command = json.dumps(test) if kind == "CMD" else _unescaped(" ".join(test))
    return [
        "--health-cmd", command,
        "--health-timeout", str(check.get("timeout", "30s")),
        "--health-retries", str(check.get("retries", 3)),
        "--health-start-period", str(check.get("start_period", "0s")),
        # No systemd here to run the checks on a timer: the tests run them (`healthcheck run`).
        "--health-interval", "disable",
    ]  # fmt: skip


def _volume(spec: str, named: Mapping[str, str]) -> str:
    source, _, rest = spec.partition(":")
    return f"{named.get(source, source)}:{rest}"


# What run_args carries over, and what the lab does itself (the build is podman.build_image's,
# networking and start order the lab's); any other key fails, rather than being left out.
CARRIED = {"image", "command", "user", "cap_drop", "cap_add", "devices", "sysctls", "read_only",
           "tmpfs", "security_opt", "volumes", "environment", "healthcheck"}  # fmt: skip
THE_LABS = {"build", "pull_policy", "ports", "network_mode", "depends_on", "restart"}


def run_args(
    service: Mapping[str, Any], *, name: str, network: str, volumes: Mapping[str, str]
) -> list[str]:
    """`podman run` for one resolved service; `volumes` maps the file's named volumes to the
    test's own, `network` is podman's --network value."""
    unknown = set(service) - CARRIED - THE_LABS
    assert not unknown, f"{name}: tests/support/compose.py does not carry {sorted(unknown)}"
    args = ["run", "--detach", "--name", name, "--network", network]
    for key, value in service.get("environment", {}).items():
        args += ["--env", f"{key}={_unescaped(str(value))}"]
    if "user" in service:
        args += ["--user", service["user"]]
    for option, key in (("--cap-drop", "cap_drop"), ("--cap-add", "cap_add")):
        for value in service.get(key, []):
            args += [option, value]
    for device in service.get("devices", []):
        args += ["--device", device]
    for key, value in service.get("sysctls", {}).items():
        args += ["--sysctl", f"{key}={value}"]
    if service.get("read_only"):
        args += ["--read-only", "--read-only-tmpfs=false"]  # as Docker: only the tmpfs asked for
    for path in service.get("tmpfs", []):
        args += ["--tmpfs", path]
    for option in service.get("security_opt", []):
        args += ["--security-opt", option.replace(":true", "")]
    for spec in service.get("volumes", []):
        args += ["--volume", _volume(spec, volumes)]
    if "healthcheck" in service:
        args += _health(service["healthcheck"])
    return [*args, service["image"], *(_unescaped(part) for part in service.get("command", []))]


def start(
    service: Mapping[str, Any],
    *,
    name: str,
    network: str,
    volumes: Mapping[str, str],
    extra: tuple[str, ...] = (),
) -> None:
    """Start it, with `extra` arguments after the file's command."""
    podman(*run_args(service, name=name, network=network, volumes=volumes), *extra)
