"""`warren geodb fetch | lookup | build`; kept light: the work is imported inside each command."""

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from core.commandline import fail_with

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from core.ipsets import IPAddress
    from geodb.lookup import Located
    from geodb.service import GeoService

Provider = Literal["maxmind", "dbip"]


def _error(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def register(app: typer.Typer) -> None:
    geodb = typer.Typer(
        help="GeoIP databases: download, look an address up, build your own.",
        no_args_is_help=True,
    )
    geodb.command()(fetch)
    geodb.command()(lookup)
    geodb.command()(build)
    app.add_typer(geodb, name="geodb", rich_help_panel="GeoIP")


ProviderOption = Annotated[
    Provider,
    typer.Option(help="maxmind (GeoLite2; a free license key) or dbip (DB-IP lite; no key)."),
]
LicenseKeyOption = Annotated[
    str | None,
    typer.Option(envvar="MAXMIND_LICENSE_KEY", help="MaxMind license key.", show_default=False),
]
EditionOption = Annotated[
    list[str] | None,
    typer.Option(
        help="Repeatable. maxmind: GeoLite2-Country, GeoLite2-ASN; dbip: country-lite, "
        "asn-lite. Default: both of the provider's.",
        show_default=False,
    ),
]
DirOption = Annotated[
    Path,
    typer.Option("--dir", "-d", help="Where to install EDITION.mmdb (dbip: dbip-EDITION.mmdb)."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Install to this file instead (one edition).", show_default=False
    ),
]
MonthOption = Annotated[
    str | None,
    typer.Option(
        help="dbip: YYYY-MM (default: this month's, else last month's).", show_default=False
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        help="The provider's base URL (env WARREN_MAXMIND_URL / WARREN_DBIP_URL).",
        show_default=False,
    ),
]


def fetch(
    provider: ProviderOption,
    license_key: LicenseKeyOption = None,
    edition: EditionOption = None,
    directory: DirOption = Path("."),
    output: OutputOption = None,
    month: MonthOption = None,
    base_url: BaseUrlOption = None,
) -> None:
    """Download a database with a progress bar, verify it, and install it atomically.

    A failed, truncated or mismatching download leaves the installed file untouched; a gateway
    using that file picks up the new one by itself.
    """
    from geodb import fetch as fetching

    try:
        base = fetching.base_url(provider, base_url)
        names = edition or list(fetching.DEFAULT_EDITIONS[provider])
        targets = [fetching.edition(provider, name) for name in names]
        chosen_month = datetime.strptime(month, "%Y-%m").date() if month else None
    except fetching.FetchError as error:
        raise _error(str(error)) from None
    except ValueError:
        raise _error(f"--month {month!r} is not YYYY-MM") from None
    if output is not None and len(targets) != 1:
        raise _error("--output names one file: pass exactly one --edition with it")
    failed = False
    with _progress() as on_progress:
        for target in targets:
            try:
                installed = fetching.fetch(
                    target,
                    directory,
                    base=base,
                    license_key=license_key,
                    month=chosen_month,
                    on_progress=on_progress,
                    output=output,
                )
            except fetching.FetchError as error:
                failed = True
                on_progress.say(f"error: {target.name}: {error}", error=True)
                continue
            on_progress.say(
                f"installed {installed.path} ({installed.database_type}, "
                f"{installed.networks} networks with {target.kind} data)"
            )
    raise typer.Exit(1 if failed else 0)


class _progress:
    """A rich progress bar per download, on stderr; nothing when stderr is not a terminal."""

    def __enter__(self) -> "_Bars":
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.bars.start()
        return _Bars(self.bars)

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()


class _Bars:
    def __init__(self, bars: "Progress") -> None:
        self.bars = bars
        self.tasks: dict[str, TaskID] = {}

    def say(self, message: str, *, error: bool = False) -> None:
        """Above the bars while they show (on a terminal); plain stdout/stderr otherwise."""
        if self.bars.live.is_started and not self.bars.disable:
            self.bars.console.print(message, style="red" if error else None, markup=False)
        elif error:
            typer.secho(message, err=True, fg=typer.colors.RED)
        else:
            typer.echo(message)

    def __call__(self, label: str, done: int, total: int | None) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bars.add_task(label, total=total)
        self.bars.update(self.tasks[label], completed=done, total=total)


AddressArgument = Annotated[str, typer.Argument(help="An IPv4 or IPv6 address.")]
LookupConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="warren.yaml whose databases to use.", show_default=False),
]
DatabasesOption = Annotated[
    list[Path] | None,
    typer.Option(help="A database file (repeatable; instead of --config).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def lookup(
    address: AddressArgument,
    config: LookupConfigOption = None,
    country_db: DatabasesOption = None,
    asn_db: DatabasesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Look an address up: its country, its AS number, and which database answered."""
    from core.ipsets import parse_address

    try:
        ip = parse_address(address)
    except ValueError:
        raise _error(f"{address!r} is not an IP address", 2) from None
    service = open_service(config, country_db, asn_db)
    located = service.locate(ip)
    current = service.current
    unanswered = (current.countries and located.country_from is None) or (
        current.asns and located.asn_from is None
    )
    note = address_note(ip) if unanswered else None
    if as_json:
        typer.echo(json.dumps(located_dict(str(ip), located, note), indent=2))
        return
    typer.echo(f"address   {ip}")
    for line in service.current.describe(located):
        typer.echo(line)
    if note:
        typer.echo(f"note      {note}")


def open_service(
    config: Path | None, country_db: list[Path] | None, asn_db: list[Path] | None
) -> "GeoService":
    """The databases named on the command line, else those of warren.yaml."""
    from core.problems import ConfigError
    from core.settings import GeoIP, load_settings
    from geodb.service import GeoService

    try:
        if country_db or asn_db:
            files = GeoIP(country_db=tuple(country_db or ()), asn_db=tuple(asn_db or ()))
            service = GeoService.from_settings(files)
        else:
            path = config or Path(os.environ.get("WARREN_CONFIG", "warren.yaml"))
            service = GeoService.from_settings(load_settings(path).geoip, path)
    except ConfigError as error:
        if country_db or asn_db:  # the files were named here, not in warren.yaml
            for problem in error.problems:
                typer.secho(f"error: {problem.message}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        fail_with(error)
    if service is None:
        raise _error(
            "no databases: set geoip.country_db / geoip.asn_db in warren.yaml, "
            "or pass --country-db / --asn-db"
        )
    return service


def located_dict(address: str, located: "Located", note: str | None) -> dict[str, object]:
    from core.regions import regions_of

    return {
        "address": address,
        "country": located.country,
        "country_database": str(located.country_from.path) if located.country_from else None,
        "regions": list(regions_of(located.country)) if located.country else [],
        "asn": located.asn,
        "asn_organization": located.asn_organization,
        "asn_database": str(located.asn_from.path) if located.asn_from else None,
        "note": note,
    }


def address_note(ip: "IPAddress") -> str | None:
    from geodb.lookup import special_range

    found = special_range(ip)
    if found is None:
        return None
    return (
        f"{found}: public databases hold none of these, so rules treat it as unknown "
        "unless a database of your own (warren geodb build) maps it"
    )


def build(
    rows: Annotated[Path, typer.Argument(help="CSV: CIDR,country[,asn] per line; # comments.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .mmdb to write.")],
) -> None:
    """Build a MaxMind-format database from CSV rows (CIDR,country[,asn])."""
    from geodb.build import BuildError
    from geodb.build import build as build_database

    try:
        built = build_database(rows, output)
    except BuildError as error:
        for problem in error.problems:
            typer.secho(f"error: {rows}:{problem}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    except OSError as error:
        raise _error(f"{error.filename or rows}: {error.strerror}") from None
    countries = sum(1 for row in built if row.country)
    asns = sum(1 for row in built if row.asn)
    typer.echo(
        f"wrote {output}: {len(built)} networks "
        f"({countries} with a country, {asns} with an AS number)"
    )
