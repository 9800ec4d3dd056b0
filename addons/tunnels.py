"""Sites' tunnels as the sidecar reports them: a target on a site is reached at the site's tunnel
address, and a site that is offline leaves routing (503 when no target is left).

The sidecar writes `<state_dir>/sites.json` when anything in it changes; this feature polls the
file's metadata with the policy's interval and swaps in a new `core.tunnels.SiteTable`. A file
that does not read keeps the last good table. Nothing here runs per request.
"""

import asyncio
import logging
from pathlib import Path

from addons.runtime import Runtime
from core.policy.compiled import Policy
from core.tunnels import SiteTable, load_sites, sites_file
from core.watch import watch_file

log = logging.getLogger("warren.tunnels")


class Tunnels:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._watch: asyncio.Task[None] | None = None

    def running(self) -> None:
        settings, store = self.runtime.settings, self.runtime.store
        if settings is None or store is None:
            return
        path = sites_file(settings.state_dir)
        self.read(path)
        store.subscribe(self._apply)

        async def reload() -> None:
            self.read(path)

        self._watch = asyncio.create_task(
            watch_file(path, settings.reload_poll.total_seconds(), reload)
        )

    def done(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def read(self, path: Path) -> None:
        try:
            table = load_sites(path)
        except FileNotFoundError:
            table = SiteTable()
        except (OSError, ValueError) as error:
            log.error("%s unreadable, keeping the sites as they were: %s", path, error)
            return
        before, self.runtime.sites = self.runtime.sites, table
        self._log_changes(before, table)
        if self.runtime.policy is not None:
            self._apply(self.runtime.policy)

    def _apply(self, policy: Policy) -> None:
        self.runtime.upstreams.set_unroutable(self.runtime.sites.unroutable(policy))

    def _log_changes(self, before: SiteTable, after: SiteTable) -> None:
        policy = self.runtime.policy
        for name in policy.model.sites if policy is not None else ():
            old, new = before.get(name), after.get(name)
            was, now = old is not None and old.online, new is not None and new.online
            if was != now:
                where = f" at {new.address}" if new is not None else ""
                log.warning("site %s is %s%s", name, "online" if now else "OFFLINE", where)
