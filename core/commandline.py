"""What every command module shares: the `-c warren.yaml` option, a refused file's errors, what
this node supports. The command line itself (core.cli) and each component's and the cluster's
commands import it, so none of them imports core.cli, and core.cli may import them."""

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from core.policy.check import Capabilities
from core.problems import ConfigError

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="WARREN_CONFIG", help="Path to warren.yaml."),
]
DEFAULT_CONFIG = Path("warren.yaml")


def fail_with(error: ConfigError) -> NoReturn:
    for problem in error.problems:
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def node_capabilities(config: Path | None) -> Capabilities:
    from core.policy.check import node_capabilities as of_settings
    from core.settings import load_settings

    return of_settings(load_settings(config) if config is not None else None)
