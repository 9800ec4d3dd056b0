"""GeoIP's one front door: every component opens a node's databases through `open_geo`.

geodb provides them through the `warren.geo` entry point; the core decides with country and ASN
facts but imports no database code, which keeps the arrows pointing one way, as the command
plug-ins do. The gateway (addons) and the command line (`warren check`, `warren explain`) both
come in here, so they open the same files the same way.
"""

from importlib.metadata import entry_points
from pathlib import Path
from typing import NamedTuple, Protocol

from core.ipsets import IPAddress
from core.settings import GeoIP


class GeoReport(NamedTuple):
    """An address's country and AS number for people, as `warren explain` prints them."""

    country: str | None  # None: unknown
    asn: int | None
    lines: list[str]  # each answer and which database gave it


class GeoSource(Protocol):
    """A node's opened GeoIP databases."""

    def country(self, ip: IPAddress) -> str | None: ...

    def asn(self, ip: IPAddress) -> int | None: ...

    def report(self, ip: IPAddress) -> GeoReport: ...

    async def watch(self, interval: float) -> None:
        """Reopen a file when it changes, until cancelled."""

    def status(self) -> dict[str, object]: ...

    def opened(self) -> list[str]:
        """Each open database, as a line for the log: kind, file, what it is."""
        ...


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
