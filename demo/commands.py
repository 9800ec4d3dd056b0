"""`warren demo`."""

import typer


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Run")
    def demo() -> None:
        """Run a gateway on loopback in front of a demo backend, with a sample policy."""
        from demo.run import run

        raise typer.Exit(run())
