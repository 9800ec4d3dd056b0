"""The GeoIP databases of warren.yaml: opened at start, reloaded when a file changes.

The lookups themselves happen through `Runtime.place`, for HTTP requests (`addons.rules`) and
raw TCP/UDP connections (`addons.raw`) alike, and only for a policy whose rules ask for a
country or an AS number.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions

from addons.runtime import Runtime
from core.problems import ConfigError
from geodb.service import GeoService

log = logging.getLogger("warren.geodb")


class Geo:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._watch: asyncio.Task[Any] | None = None

    def configure(self, updated: set[str]) -> None:
        settings = self.runtime.settings
        if "warren_config" not in updated or not ctx.options.warren_config or settings is None:
            return
        try:
            geo = GeoService.from_settings(settings.geoip, Path(ctx.options.warren_config))
        except ConfigError as error:
            raise exceptions.OptionsError(f"Warren cannot start:\n{error}") from None
        self.runtime.geo = geo
        if geo is not None:
            for database in (*geo.current.countries, *geo.current.asns):
                log.info("geoip %s database %s", database.kind, database.description)
            if self._watch is not None:  # warren_config changed while running: watch anew
                self._watch.cancel()
                self._start_watch()

    async def running(self) -> None:
        self._start_watch()

    def done(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def _start_watch(self) -> None:
        settings, geo = self.runtime.settings, self.runtime.geo
        if settings is None or geo is None:
            return
        self._watch = asyncio.get_running_loop().create_task(
            geo.watch(settings.reload_poll.total_seconds())
        )
