"""The node's files and the systemd units, from the templates beside this module, with the real
paths: the `warren` in use and the configuration directory."""

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

from core.install.answers import Answers, InitError
from core.install.write import NodeFile

NODE_UNITS = ("warren-sidecar.service", "warren-portal.service", "warren-gateway.service")
SITE_UNIT = "warren-site.service"
SITE_SECRETS = Path("/etc/warren-site")  # on the home server; systemd hands the agent its secret
# systemd splits ExecStart= at whitespace and reads quotes, backslashes and $ itself.
_NOT_IN_UNITS = re.compile(r"[\s\"'\\$;]")


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    units_dir: Path
    warren: Path  # the executable the units run
    user: str  # the account the services run as

    @property
    def config(self) -> Path:
        return self.config_dir / "warren.yaml"

    @property
    def site_dir(self) -> Path:
        """What to copy to the home server: the site's secret and its unit."""
        return self.config_dir / "site"

    def site_secret(self, answers: Answers) -> Path:
        return self.site_dir / f"{answers.site}.secret"


def template(name: str) -> str:
    return (files("core.install") / "templates" / name).read_text(encoding="utf-8")


def render(name: str, values: Mapping[str, str]) -> str:
    return Template(template(name)).substitute(values)


def warren_executable(given: Path | None) -> Path:
    """The `warren` running now (argv[0], or the one beside this Python, as in a virtual
    environment), else the first on PATH."""
    if given is not None:
        if not os.access(given, os.X_OK) or given.is_dir():
            raise InitError(f"--executable {given}: not an executable file")
        return given.absolute()
    running = Path(sys.argv[0])
    beside = Path(sys.executable).parent / "warren"
    on_path = shutil.which("warren")
    for candidate in (running if running.name == "warren" else None, beside, on_path):
        if candidate is not None and os.access(candidate, os.X_OK):
            return Path(candidate).absolute()
    raise InitError("cannot find the warren executable the units should run; pass --executable")


def unit_word(path: Path, what: str) -> str:
    """A path as one word of a unit file; `%` starts a specifier there, so it is doubled."""
    text = str(path)
    if _NOT_IN_UNITS.search(text) or not text.isprintable():
        raise InitError(
            f"{what} {text}: a path in a systemd unit may not hold spaces, quotes, '\\', '$' or ';'"
        )
    return text.replace("%", "%%")


def unit_values(answers: Answers, paths: Paths) -> dict[str, str]:
    return {
        "warren": unit_word(paths.warren, "the warren executable"),
        "config": unit_word(paths.config, "the configuration"),
        "user": paths.user,
        "site": answers.site,
        "node": answers.node_url,
        "secret": str(SITE_SECRETS / f"{answers.site}.secret"),
    }


def config_values(answers: Answers, paths: Paths, secret_sha256: str) -> dict[str, str]:
    return {
        "domain": answers.domain,
        "portal_host": answers.portal_host,
        "email": json.dumps(answers.email),  # a YAML string, whatever the address holds
        "wg_endpoint": json.dumps(answers.wg_endpoint),
        "config": str(paths.config),
        "site": answers.site,
        "secret_sha256": secret_sha256,
        "secret_file": str(paths.site_secret(answers)),
    }


def node_files(answers: Answers, paths: Paths, secret: str, secret_sha256: str) -> list[NodeFile]:
    """Everything but users.yaml, in the order written: the secret before the policy that holds
    its hash, the node's files before the units that run on them."""
    config = config_values(answers, paths, secret_sha256)
    units = unit_values(answers, paths)
    return [
        NodeFile(paths.site_secret(answers), secret + "\n", 0o600, secret=True),
        NodeFile(paths.config_dir / "policy.yaml", render("policy.yaml", config), 0o640, "group"),
        NodeFile(paths.config, render("warren.yaml", config), 0o640, "group"),
        NodeFile(paths.site_dir / SITE_UNIT, render(SITE_UNIT, units), 0o644),
        *(NodeFile(paths.units_dir / name, render(name, units), 0o644) for name in NODE_UNITS),
    ]
