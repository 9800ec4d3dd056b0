"""The gateway's sub-commands; kept light so `warren --help` does not import mitmproxy."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from core.commandline import ConfigOption, fail_with


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Run")
    def gateway(
        config: ConfigOption,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Log every connection.")
        ] = False,
    ) -> None:
        """Run the gateway: mitmproxy with the Warren addons, nothing else."""
        from mitmproxy.exceptions import OptionsError

        from addons.gateway import optimised, serve
        from core.problems import ConfigError

        optimised(["gateway", *sys.argv[sys.argv.index("gateway") + 1 :]])
        try:
            raise typer.Exit(serve(Path(config), verbose))
        except ConfigError as error:
            fail_with(error)
        except OptionsError as error:  # the pack refused its configuration: say why, no trace
            typer.secho(str(error), err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
