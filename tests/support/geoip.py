"""GeoIP test databases: MaxMind's official test files (../shared/testdata/geoip/) and our own.

Known entries (from the README beside the files):
country: 81.2.69.142 GB, 89.160.20.112 SE, 216.160.83.56 US, 2001:218::1 JP, 2a02:cf40::1 NO;
8.8.8.8 and 175.16.199.1 are absent. ASN: 1.128.0.1 AS1221, 12.81.92.1 AS7018,
89.160.20.112 AS29518.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.testdata import shared_testdata

if TYPE_CHECKING:
    import typer


COUNTRY = "GeoLite2-Country-Test.mmdb"
ASN = "GeoLite2-ASN-Test.mmdb"
CITY = "GeoIP2-City-Test.mmdb"
BROKEN_CITY = "GeoIP2-City-Test-Broken-Double-Format.mmdb"


def geoip_file(name: str) -> Path:
    return shared_testdata("geoip", name)


def build(directory: Path, rows: str, name: str = "custom.mmdb") -> Path:
    """A database made by `geodb build` from CSV rows."""
    from geodb.build import build as build_database

    source = directory / f"{name}.csv"
    source.write_text(rows)
    output = directory / name
    build_database(source, output)
    return output


def geodb_cli() -> "typer.Typer":
    """`warren geodb ...` as the installed command has it (the entry point registers it)."""
    import typer

    from geodb.commands import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app
