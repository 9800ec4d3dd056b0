"""The databases a running node answers from: opened at start, reopened when a file changes.

`GeoService.facts(ip)` is the one call a request path needs (HTTP rules today, raw TCP/UDP
connections next); it reads `current` once, so a reload landing meanwhile never mixes two
versions. A reload opens the new file in a worker thread, checks it like at start, and swaps a
whole new `Lookup` in one assignment; a file that fails the checks is refused and the last good
copy keeps answering.

Other components reach it only through `core.geo.open_geo` (the `warren.geo` entry point), as a
`core.geo.GeoSource`: this module is geodb's own.
"""

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from core.geo import GeoReport, GeoSource
from core.ipsets import IPAddress
from core.problems import ConfigError, Loc, Problem
from core.settings import GeoIP
from core.watch import signature, watch_file
from core.yamlfile import locate
from geodb.database import Database, DatabaseError, Kind, open_database
from geodb.lookup import GeoFacts, Located, Lookup

log = logging.getLogger("warren.geodb")

KINDS: tuple[Kind, ...] = ("country", "asn")


def configured(settings: GeoIP) -> Iterator[tuple[Kind, Loc, Path]]:
    for kind in KINDS:
        paths: tuple[Path, ...] = getattr(settings, f"{kind}_db")
        for index, path in enumerate(paths):
            key = f"{kind}_db"
            yield kind, ("geoip", key, index) if len(paths) > 1 else ("geoip", key), path


def open_all(settings: GeoIP, source: Path | None = None) -> dict[Kind, list[Database]]:
    """Every configured database, or a ConfigError naming each one that cannot be used."""
    opened: dict[Kind, list[Database]] = {kind: [] for kind in KINDS}
    problems = []
    for kind, loc, path in configured(settings):
        try:
            opened[kind].append(open_database(path, kind))
        except DatabaseError as error:
            problems.append(Problem(loc, str(error), source))
    if problems:
        raise ConfigError(_located(problems, source))
    return opened


def _located(problems: list[Problem], source: Path | None) -> list[Problem]:
    try:
        text = source.read_text() if source is not None else ""
    except OSError:
        return problems
    return locate(text, problems, source) if text else problems


def open_for_core(settings: GeoIP, source: Path | None) -> GeoSource:
    """The `warren.geo` entry point: `core.geo.open_geo`, GeoIP's one front door, calls this."""
    return GeoService(settings, source)


class GeoService:
    def __init__(self, settings: GeoIP, source: Path | None = None) -> None:
        self.settings = settings
        opened = open_all(settings, source)
        self.current = Lookup(opened["country"], opened["asn"], settings.cache_size)
        self.loaded_at = {path: datetime.now(UTC) for _kind, _loc, path in configured(settings)}
        self.reloads = 0
        self.failed_reloads = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: GeoIP, source: Path | None = None) -> "GeoService | None":
        if not settings.country_db and not settings.asn_db:
            return None
        return cls(settings, source)

    def country(self, ip: IPAddress) -> str | None:
        return self.current.country(ip)

    def asn(self, ip: IPAddress) -> int | None:
        return self.current.asn(ip)

    def facts(self, ip: IPAddress) -> GeoFacts:
        return self.current.facts(ip)

    def locate(self, ip: IPAddress) -> Located:
        return self.current.locate(ip)

    def report(self, ip: IPAddress) -> GeoReport:
        current = self.current
        located = current.locate(ip)
        return GeoReport(located.country, located.asn, current.describe(located))

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(path for _kind, _loc, path in configured(self.settings)))

    def reload(self, path: Path, *, force: bool = False) -> bool:
        """Reopen `path` wherever it is used; False (and the old copy kept) if it fails."""
        with self._lock:
            current = self.current
            countries, asns = list(current.countries), list(current.asns)
            changed = False
            for databases in (countries, asns):
                for index, old in enumerate(databases):
                    if old.path != path or (not force and signature(path) == old.signature):
                        continue
                    try:
                        databases[index] = open_database(path, old.kind)
                    except DatabaseError as error:
                        self._refuse(error, old)
                        return False
                    changed = True
            if changed:
                # The old readers are left to the garbage collector, not closed: a lookup on
                # the event loop may still be using them.
                self.current = Lookup(countries, asns, self.settings.cache_size)
                self.loaded_at[path] = datetime.now(UTC)
                self.reloads += 1
                self.last_error = None
                log.info("geoip database %s reloaded", path)
            return True

    def _refuse(self, error: DatabaseError, old: Database) -> None:
        self.failed_reloads += 1
        self.last_error = str(error)
        log.error("geoip reload refused: %s; still answering from %s", error, old.description)

    def _gone(self, path: Path) -> None:
        log.warning(
            "geoip database %s is gone; still answering from the copy loaded at %s",
            path,
            f"{self.loaded_at[path]:%Y-%m-%d %H:%M:%S} UTC",
        )

    async def watch(self, interval: float) -> None:
        """Poll every file's metadata (core.watch) and reload the ones that change."""

        async def watch_one(path: Path) -> None:
            async def changed() -> None:
                await asyncio.to_thread(self.reload, path)

            await watch_file(path, interval, changed, on_missing=lambda: self._gone(path))

        await asyncio.gather(*(watch_one(path) for path in self.paths))

    def opened(self) -> list[str]:
        current = self.current
        return [f"{db.kind} {db.description}" for db in (*current.countries, *current.asns)]

    def status(self) -> dict[str, object]:
        current = self.current
        return {
            "databases": [
                {
                    "kind": database.kind,
                    "path": str(database.path),
                    "type": database.database_type,
                    "built": database.built.isoformat(),
                    "loaded": self.loaded_at[database.path].isoformat(),
                    "lookup_errors": database.lookup_errors,
                }
                for database in (*current.countries, *current.asns)
            ],
            "reloads": self.reloads,
            "failed_reloads": self.failed_reloads,
            "last_error": self.last_error,
        }
