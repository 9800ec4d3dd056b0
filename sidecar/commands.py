"""`warren sidecar`, `warren site` and `warren site add`; kept light (imports happen inside)."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with

if TYPE_CHECKING:
    from sidecar.device import BackendChoice

VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")]
DEFAULT_SITE_STATE = Path("/var/lib/warren-site")

site_app = typer.Typer(
    help="Run the site agent on a private server (see `warren site --help`), or add a site.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@site_app.callback()
def site(
    context: typer.Context,
    node: Annotated[
        list[str] | None,
        typer.Option(
            help="A node's HTTPS URL; again for more. The agent learns the other nodes from it."
        ),
    ] = None,
    site: Annotated[str | None, typer.Option(help="This site's name in policy.yaml.")] = None,
    secret_file: Annotated[
        Path | None, typer.Option(help="File holding the site's secret (from `warren site add`).")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="Where the agent keeps its WireGuard key.")
    ] = DEFAULT_SITE_STATE,
    interface: Annotated[
        str | None, typer.Option(help="WireGuard interface name (default: wrn-SITE).")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto, kernel or userspace (wireguard-go).")
    ] = "auto",
    ca_file: Annotated[
        Path | None, typer.Option(help="CA certificates to trust for the node's HTTPS.")
    ] = None,
    probe_interval: Annotated[float, typer.Option(help="Seconds between tunnel probes.")] = 2.0,
    refresh: Annotated[
        float, typer.Option(help="Seconds between registrations (forward changes).")
    ] = 10.0,
    fallback_after: Annotated[
        float,
        typer.Option(
            min=1.0, help="Seconds without a WireGuard handshake over UDP before TCP/443."
        ),
    ] = 12.0,
    retry_udp: Annotated[
        float, typer.Option(min=1.0, help="Seconds between tries of UDP while on TCP/443.")
    ] = 60.0,
    verbose: VerboseOption = False,
) -> None:
    """Run the site agent: register with every node, bring up WireGuard, forward to targets."""
    if context.invoked_subcommand is not None:
        return
    if not node or site is None or secret_file is None:
        typer.echo(context.get_help())
        typer.secho("error: --node, --site and --secret-file are required", err=True, fg="red")
        raise typer.Exit(2)
    from sidecar.agent import AgentOptions
    from sidecar.site import serve

    options = AgentOptions(
        nodes=tuple(_https_url(url) for url in node),
        site=site,
        secret=_read_secret(secret_file),
        state_dir=state_dir,
        interface=interface or f"wrn-{site}"[:15],
        backend=_backend(backend),
        ca_file=ca_file,
        probe_interval=probe_interval,
        refresh=refresh,
        fallback_after=fallback_after,
        retry_udp=retry_udp,
    )
    raise typer.Exit(serve(options, verbose))


@site_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The new site's name.")],
    config: ConfigOption = DEFAULT_CONFIG,
    policy: Annotated[
        Path | None, typer.Option(help="policy.yaml to edit (default: warren.yaml's policy_file).")
    ] = None,
    no_edit: Annotated[
        bool, typer.Option("--no-edit", help="Print the line to add; change no file.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the secret to this new file (mode 0600), not stdout."
        ),
    ] = None,
) -> None:
    """Make a site secret; print it once and write only its hash into policy.yaml.

    The secret alone goes to standard output, or with `-o home.secret` into a new file only its
    owner can read (a shell's `> home.secret` makes it readable by everyone)."""
    from core.policy.check import node_capabilities
    from core.problems import ConfigError
    from core.settings import load_settings
    from sidecar.siteadd import SiteAddError, add_site, check_output

    try:
        if output is not None:
            check_output(output)  # before policy.yaml changes: a refusal must lose nothing
        settings = load_settings(config) if config.exists() or policy is None else None
        path = policy or (settings.policy_file if settings else Path("policy.yaml"))
        added = add_site(path, name, node_capabilities(settings), edit=not no_edit)
    except ConfigError as error:
        fail_with(error)
    except SiteAddError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        raise typer.Exit(1) from None
    if added.edited:
        typer.echo(f"site {name} added to {path}; every Warren process here reloads it.", err=True)
    else:
        typer.echo(f"add this line under `sites:` in {path}:\n\n{added.entry}\n", err=True)
    written = output is not None and _write_secret(output, added.secret)
    if output is not None and written:
        typer.echo(
            f"Its secret is in {output} (mode 0600; policy.yaml keeps only its SHA-256). Copy "
            "it to the private server, keep it readable only by root there, and run\n"
            f"  warren site --node https://NODE --site {name} --secret-file {output.name}",
            err=True,
        )
        return
    typer.echo(
        "Its secret follows, shown this once (policy.yaml keeps only its SHA-256). On the "
        f"private server keep it in a file only root can read, e.g. {name}.secret, and run\n"
        f"  warren site --node https://NODE --site {name} --secret-file {name}.secret\n",
        err=True,
    )
    typer.echo(added.secret)
    if output is not None:
        raise typer.Exit(1)  # shown, so nothing is lost; but the file asked for is not there


def _write_secret(output: Path, secret: str) -> bool:
    """False when the file could not be written: the secret then goes to standard output, since
    policy.yaml already holds its hash and the secret exists nowhere else."""
    from core.files import write_atomically

    try:
        write_atomically(output, secret.encode() + b"\n", exclusive=True)
    except OSError as error:
        typer.secho(f"error: cannot write {output}: {error.strerror}", err=True, fg="red")
        return False
    return True


def _https_url(node: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(node)
    if parts.scheme != "https" or not parts.hostname:
        typer.secho(
            f"error: --node must be the node's https:// URL (the secret travels in it): {node}",
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    return node


def _read_secret(path: Path) -> str:
    try:
        secret = path.read_text().strip()
        mode = path.stat().st_mode
    except OSError as error:
        typer.secho(f"error: cannot read {path}: {error.strerror}", err=True, fg="red")
        raise typer.Exit(2) from None
    if not secret:
        typer.secho(f"error: {path} is empty", err=True, fg="red")
        raise typer.Exit(2)
    if mode & 0o077:
        typer.secho(f"warning: {path} is readable by others; chmod 600 it", err=True, fg="yellow")
    return secret


def _backend(value: str) -> "BackendChoice":
    if value in ("auto", "kernel", "userspace"):
        return cast("BackendChoice", value)
    typer.secho(f"error: --backend is auto, kernel or userspace, not {value}", err=True, fg="red")
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Run")
    def sidecar(config: ConfigOption = DEFAULT_CONFIG, verbose: VerboseOption = False) -> None:
        """Run the node sidecar: the WireGuard interface, site registration, tunnel health."""
        from core.problems import ConfigError
        from sidecar.device import DeviceError
        from sidecar.isolation import IsolationError
        from sidecar.service import serve

        try:
            raise typer.Exit(serve(Path(config), verbose))
        except ConfigError as error:
            fail_with(error)
        except (DeviceError, IsolationError) as error:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None

    app.add_typer(site_app, name="site", rich_help_panel="Run")
