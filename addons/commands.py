"""The gateway's sub-commands; kept light so `warren --help` does not import mitmproxy."""

from pathlib import Path
from typing import Annotated

import typer

from core.cli import ConfigOption, fail_with


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Run")
    def gateway(
        config: ConfigOption,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Log every decision.")
        ] = False,
    ) -> None:
        """Run the gateway: mitmproxy with the Warren addons, nothing else."""
        from addons.gateway import serve
        from core.problems import ConfigError

        try:
            raise typer.Exit(serve(Path(config), "debug" if verbose else "info"))
        except ConfigError as error:
            fail_with(error)
