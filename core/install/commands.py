"""`warren init`; kept light (the work is imported when it runs)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

Text = str | None


def init(
    domain: Annotated[Text, typer.Option(help="Your domain: the portal is auth.DOMAIN.")] = None,
    email: Annotated[Text, typer.Option(help="The ACME account's and the admin's e-mail.")] = None,
    admin: Annotated[Text, typer.Option(help="The first admin's user name [admin].")] = None,
    site: Annotated[Text, typer.Option(help="The home server's site name [home].")] = None,
    wg_host: Annotated[
        Text, typer.Option(help="DNS-only name or address sites send WireGuard to [wg.DOMAIN].")
    ] = None,
    ipv4: Annotated[
        Text, typer.Option(help="This node's public IPv4, for the DNS records.")
    ] = None,
    ipv6: Annotated[
        Text, typer.Option(help="This node's public IPv6, for the DNS records.")
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where warren.yaml, policy.yaml, users.yaml go.")
    ] = Path("/etc/warren"),
    units_dir: Annotated[Path, typer.Option(help="Where the node's systemd units go.")] = Path(
        "/etc/systemd/system"
    ),
    user: Annotated[str, typer.Option(help="The account the services run as.")] = "warren",
    executable: Annotated[
        Path | None, typer.Option(help="The warren the units run [the one running now].")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace files that are already there.")] = False,
    non_interactive: Annotated[
        bool, typer.Option(help="Ask nothing, even on a terminal: every answer from flags.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the admin's password from standard input.")
    ] = False,
) -> None:
    """Set up a node: a commented warren.yaml and policy.yaml, the first admin, a home server's
    site and the systemd units; then print the DNS records, firewall ports and what to run.

    On a terminal it asks for what the flags leave out; otherwise --domain and --email are
    needed, and the admin's password is made up and shown once."""
    from core.install.answers import InitError, MissingFlag
    from core.install.node import Request, initialise

    given = {"domain": domain, "email": email, "admin": admin, "site": site}
    given |= {"wg_host": wg_host, "ipv4": ipv4, "ipv6": ipv6}
    interactive = not non_interactive and not password_stdin and sys.stdin.isatty()
    request = Request(
        given=given,
        config_dir=directory,
        units_dir=units_dir,
        user=user,
        executable=executable,
        force=force,
        ask=_ask if interactive else None,
        password_stdin=password_stdin,
    )
    try:
        outcome = initialise(request)
    except InitError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2 if isinstance(error, MissingFlag) else 1) from None
    for warning in outcome.warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    typer.echo("wrote:\n" + "\n".join(f"  {path}" for path in outcome.written) + "\n")
    typer.echo(outcome.report)


def _ask(prompt: str, default: str | None) -> str:
    answer: str = typer.prompt(prompt, default=default, show_default=bool(default))
    return answer
