"""The `warren` command line. Components add their own commands through the
`warren.commands` entry points, so this module imports none of them."""

import json
from collections.abc import Callable
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with, node_capabilities
from core.install import commands as install_commands
from core.policy.check import Capabilities
from core.problems import ConfigError

if TYPE_CHECKING:
    from core.policy.compiled import Policy
    from core.settings import Settings

app = typer.Typer(
    name="warren",
    help="Warren: identity-aware, tunnelled ingress for self-hosted applications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"warren {version('warren')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def _looks_like_policy(data: Any) -> bool:
    return isinstance(data, dict) and ("resources" in data or "version" in data)


@app.command(rich_help_panel="Policy")
def check(
    files: Annotated[list[Path], typer.Argument(help="policy.yaml and/or warren.yaml files.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="warren.yaml, for what the node supports.")
    ] = None,
) -> None:
    """Validate policy and settings files; every error with its file, key and reason."""
    from core.cluster.subnets import check_subnet
    from core.policy.load import build_policy, load_policy
    from core.settings import load_settings
    from core.yamlfile import load_yaml

    failed = False
    for path in files:
        try:
            text, data = load_yaml(path)
            if _looks_like_policy(data):
                capabilities = node_capabilities(config)
                policy = build_policy(text, data, path, capabilities)
                typer.echo(
                    f"{path}: ok ({len(policy.resources)} resources, {policy.rule_count} rules)"
                )
            else:
                settings = load_settings(path)
                _check_databases(settings, path)
                capabilities = node_capabilities(path)
                policy = load_policy(settings.policy_file, capabilities)
                certificates = _check_certificates(settings, policy, path)
                unchecked = check_subnet(settings, path)  # per-node subnets (tunnels.md)
                if unchecked is not None:
                    typer.secho(f"warning: {unchecked}", err=True, fg=typer.colors.YELLOW)
                typer.echo(f"{path}: ok (policy {settings.policy_file}: ok{certificates})")
                _warn_persistence(settings)
            _warn(policy, capabilities)
        except ConfigError as error:
            failed = True
            for problem in error.problems:
                typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1 if failed else 0)


def _warn_persistence(settings: "Settings") -> None:
    """Sign-outs live only in shared storage: a warning when it would forget them on restart."""
    import asyncio

    from core.persistence import persistence_problem

    problem = asyncio.run(persistence_problem(settings.storage))
    if problem is not None:
        typer.secho(f"warning: storage: {problem}", err=True, fg=typer.colors.YELLOW)


def _check_databases(settings: "Settings", path: Path) -> None:
    """The geoip files must open as the gateway would open them (raises ConfigError)."""
    from core.geo import open_geo

    open_geo(settings.geoip, path)


def _check_certificates(settings: "Settings", policy: "Policy", path: Path) -> str:
    """The certificate files must open, be current and cover every host (raises ConfigError)."""
    from urllib.parse import urlsplit

    from core.certs import check_certificates

    hosts = [host for r in policy.model.resources.values() for host in r.host or ()]
    if settings.public_url is not None:
        hosts.append(urlsplit(settings.public_url).hostname or "")
    admin = [(files.cert, files.key) for files in settings.certs]
    # With ACME on, a host no file covers is one ACME orders for (`warren status` says how).
    wanted = () if settings.acme is not None else dict.fromkeys(hosts)
    problems, opened = check_certificates(admin, wanted, path)
    if problems:
        raise ConfigError(problems)
    return f", {len(opened)} certificates" if opened else ""


def _warn(policy: "Policy", capabilities: Capabilities) -> None:
    from core.policy.limitchecks import located_warnings

    for warning in located_warnings(policy.model, policy.source, sign_in=capabilities.sign_in):
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)


@app.command(rich_help_panel="Policy")
def explain(
    policy_file: Annotated[Path, typer.Argument(help="policy.yaml")],
    host: Annotated[str, typer.Option(help="Host the request is for.")],
    path: Annotated[str, typer.Option(help="Request path.")] = "/",
    ip: Annotated[str, typer.Option(help="Client address.")] = "203.0.113.10",
    method: Annotated[str, typer.Option(help="HTTP method.")] = "GET",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="warren.yaml")] = None,
    country: Annotated[
        str | None,
        typer.Option(help="The client's country, instead of looking it up.", show_default=False),
    ] = None,
    asn: Annotated[
        str | None,
        typer.Option(help="The client's AS number, instead of looking it up.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Say which rule decides a request, and what the gateway answers."""
    from core.explain import explain as explain_request
    from core.policy.load import load_policy
    from core.policy.model import parse_asn, parse_country

    try:
        given_country = parse_country(country) if country is not None else None
        given_asn = parse_asn(asn) if asn is not None else None
    except ValueError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    capabilities = node_capabilities(config)
    if country is not None or asn is not None:
        # A what-if: geo rules are decided with the values given, anything not given unknown.
        capabilities = Capabilities(country_db=True, asn_db=True)
    try:
        policy = load_policy(policy_file, capabilities)
    except ConfigError as error:
        fail_with(error)
    try:
        geo = _geo_facts(config, ip, given_country, given_asn)
        result = explain_request(policy, host, path, ip, method, geo.country, geo.asn)
    except ValueError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(f"request   {method.upper()} {host}{path} from {ip}")
    if policy.uses_geo or geo.lines:
        for line in geo.lines or _unknown_geo():
            typer.echo(line)
    if result.resource:
        typer.echo(f"resource  {result.resource}")
    if result.path and result.path != path.partition("?")[0]:
        typer.echo(f"path      {result.path} (canonical)")
    if result.rule:
        typer.echo(f"rule      {result.rule}  {result.rule_text}")
    if result.route:
        typer.echo(f"route     {result.route}")
    if result.target_path:
        typer.echo(f"target    gets {result.target_path} (the route's rewrite)")
    for note in result.notes:
        typer.echo(f"note      {note}")
    for limit in result.rate_limits:
        typer.echo(f"limit     {limit}")
    typer.echo(f"outcome   {result.summary}")


class _Geo(NamedTuple):
    country: str | None
    asn: int | None
    lines: list[str]  # for people: each value and where it came from


def _geo_facts(config: Path | None, ip: str, country: str | None, asn: int | None) -> _Geo:
    """The client's country and AS number as the gateway would see them: looked up in the
    databases of warren.yaml, unless given on the command line."""
    from core.ipsets import parse_address

    found_country, found_asn, lines = country, asn, []
    if config is not None:
        from core.geo import open_geo
        from core.settings import load_settings

        try:
            databases = open_geo(load_settings(config).geoip, config)
        except ConfigError as error:
            fail_with(error)
        if databases is not None:
            report = databases.report(parse_address(ip))
            found_country = country if country is not None else report.country
            found_asn = asn if asn is not None else report.asn
            lines = report.lines
    if country is not None or asn is not None:
        lines = lines or _unknown_geo()
        if country is not None:
            lines[0] = f"country   {country} (given)"
        if asn is not None:
            lines[1] = f"asn       AS{asn} (given)"
    return _Geo(found_country, found_asn, lines)


def _unknown_geo() -> list[str]:
    return [
        "country   unknown (no database: pass --config or --country)",
        "asn       unknown (no database: pass --config or --asn)",
    ]


def _control(
    config: Path, command: str, after_error: Callable[[], None] | None = None
) -> dict[str, Any]:
    from core import control
    from core.settings import load_settings

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    try:
        return control.call(settings.control_path, command)
    except OSError as error:
        typer.secho(
            f"error: no gateway answers on {settings.control_path}: {error.strerror}",
            err=True,
            fg=typer.colors.RED,
        )
        if after_error is not None:
            after_error()
        raise typer.Exit(1) from None


@app.command(rich_help_panel="Run")
def reload(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Ask every Warren process on this node (gateway, sidecar, portal) to reload policy.yaml now.

    Each reads the file itself; those not running here are left out. Fails when the gateway does
    not answer or any process refuses the file (it then keeps running the last good one)."""
    from core import control
    from core.settings import load_settings
    from core.tunnels import sidecar_socket

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    sockets = {
        "gateway": settings.control_path,
        "sidecar": sidecar_socket(settings.state_dir),
        "portal": control.portal_socket(settings.state_dir),
    }
    failed = False
    for name, path in sockets.items():
        try:
            reply = control.call(path, "reload")
        except OSError as error:
            if name == "gateway":
                typer.secho(
                    f"error: no gateway answers on {path}: {error.strerror}", err=True, fg="red"
                )
                failed = True
            continue  # the sidecar and the portal need not run on every node
        failed |= not _reloaded(name, reply)
    if failed:
        raise typer.Exit(1)


def _reloaded(name: str, reply: dict[str, Any]) -> bool:
    if not reply.get("ok"):
        typer.secho(
            f"{name}: reload refused; still running {reply.get('digest')}:", fg="red", err=True
        )
        typer.echo(str(reply.get("error")), err=True)
        return False
    typer.echo(
        f"{name}: policy {reply['digest']} running: {reply['rules']} rules "
        f"(validated and swapped in {reply['seconds']:.3f}s)"
    )
    return True


@app.command(rich_help_panel="Run")
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='The replies as one JSON object on stdout: {"gateway": ..., "sidecar": ...}.',
        ),
    ] = False,
) -> None:
    """Show the running gateway's policy and reload counters, and each site's tunnel."""
    from core import control
    from core.settings import load_settings
    from core.tunnels import sidecar_socket

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    try:
        sites: dict[str, Any] | None = control.call(sidecar_socket(settings.state_dir), "status")
    except OSError:
        sites = None  # no sidecar on this node (or not running): said below if it matters
    if as_json:
        # The gateway not answering is still an error (exit 1, on stderr); the sidecar is null
        # when none answers, as the human output leaves its lines out.
        reply = _control(config, "status")
        typer.echo(json.dumps({"gateway": reply, "sidecar": sites}, indent=2, default=str))
        return
    reply = _control(config, "status", after_error=lambda: _echo_sites(sites, settings.state_dir))
    for key, value in reply.items():
        if key != "ok":
            typer.echo(f"{key:15} {'none' if value is None else value}")
    _echo_sites(sites, settings.state_dir)


def _echo_sites(reply: dict[str, Any] | None, state_dir: Path) -> None:
    from core.tunnels import format_sites, sidecar_socket

    if reply is None:
        if (state_dir / "sidecar").exists():  # a sidecar ran here before
            typer.echo(f"sites           no sidecar answers on {sidecar_socket(state_dir)}")
        return
    typer.echo(
        f"tunnel          {reply.get('interface')} ({reply.get('backend')} WireGuard), "
        f"{reply.get('address')}"
    )
    typer.echo("")
    typer.echo(format_sites(reply.get("sites") or []))


cloudflare_ranges = typer.Typer(
    help="Cloudflare's edge networks, for trusted_proxies: [cloudflare].", no_args_is_help=True
)
app.add_typer(cloudflare_ranges, name="cloudflare-ranges", rich_help_panel="Run")


@cloudflare_ranges.command("update")
def cloudflare_ranges_update(
    config: ConfigOption = DEFAULT_CONFIG,
    url: Annotated[
        list[str] | None,
        typer.Option(help="A list to fetch instead of Cloudflare's two (repeat for each)."),
    ] = None,
) -> None:
    """Fetch Cloudflare's published ranges into state_dir; the gateway uses them from its next
    reload on, asked for here when it answers. A list that is not plainly Cloudflare's (not
    CIDRs, not IPv4 and IPv6, a network wider than /8 or /20) is refused; the old one stays."""
    import httpx

    from core import cloudflare
    from core.files import replacing
    from core.settings import load_settings

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    urls = url or [cloudflare.PUBLISHED_V4, cloudflare.PUBLISHED_V6]
    try:
        networks = cloudflare.fetch_ranges(urls)
    except (httpx.HTTPError, ValueError) as error:
        typer.secho(f"error: {error}; the ranges in use are unchanged", err=True, fg="red")
        raise typer.Exit(1) from None
    path = settings.state_dir / cloudflare.RANGES_FILE
    with replacing(path, 0o644) as temporary:
        temporary.write_text(cloudflare.ranges_text(networks, urls))
    typer.echo(f"{path}: {len(networks)} networks")
    _ask_to_reload(settings.control_path)


def _ask_to_reload(control_path: Path) -> None:
    from core import control

    try:
        reply = control.call(control_path, "reload")
    except OSError:
        typer.echo("no gateway answers here: it reads them when it starts")
        return
    if not _reloaded("gateway", reply):
        raise typer.Exit(1)


class Component(StrEnum):
    gateway = "gateway"
    portal = "portal"
    sidecar = "sidecar"


@app.command(rich_help_panel="Run")
def health(
    component: Annotated[Component, typer.Argument(help="The process to ask.")] = Component.gateway,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Exit 0 when the gateway, portal or sidecar here answers on its control socket; for
    container and service health checks."""
    from core import control
    from core.settings import load_settings
    from core.tunnels import sidecar_socket

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    path = {
        Component.gateway: settings.control_path,
        Component.portal: control.portal_socket(settings.state_dir),
        Component.sidecar: sidecar_socket(settings.state_dir),
    }[component]
    try:
        reply = control.call(path, "status", timeout=5)
    except (OSError, ValueError) as error:  # not running, not ours to ask, or hung up on us
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        typer.secho(f"error: {component}: no answer on {path}: {reason}", err=True, fg="red")
        raise typer.Exit(1) from None
    if not reply.get("ok"):
        typer.secho(f"error: {component}: {reply.get('error')}", err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(f"{component}: up")


app.command(rich_help_panel="Install")(install_commands.init)


def main() -> None:
    from core.cluster import commands as cluster_commands

    cluster_commands.register(app)
    for entry in entry_points(group="warren.commands"):
        entry.load()(app)
    app()
