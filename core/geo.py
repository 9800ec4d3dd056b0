"""Where the core finds a node's GeoIP databases: the `warren.geo` entry point (geodb provides it).

The core decides with country and ASN facts but does not read databases itself; this keeps the
arrows pointing one way, as the command plug-ins do.
"""

from importlib.metadata import entry_points
from pathlib import Path
from typing import NamedTuple, Protocol

from core.ipsets import IPAddress
from core.settings import GeoIP


class Placed(NamedTuple):
    country: str | None  # None: unknown
    asn: int | None
    lines: list[str]  # for people: each answer and which database gave it


class GeoSource(Protocol):
    def place(self, ip: IPAddress) -> Placed: ...


def open_geo(settings: GeoIP, source: Path | None) -> GeoSource | None:
    """The configured databases, opened as the gateway opens them; None when none are configured.
    Raises ConfigError for a database that cannot be used."""
    if not settings.country_db and not settings.asn_db:
        return None
    for entry in entry_points(group="warren.geo"):
        opener = entry.load()
        opened: GeoSource = opener(settings, source)
        return opened
    raise RuntimeError("GeoIP databases are configured but the geodb package is not installed")
