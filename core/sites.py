"""The gateway's view of sites: where each site's tunnel ends, from the sidecar's sites.json
checked against the gateway's own policy, kept current.

The sidecar writes `<state_dir>/sites.json` when anything in it changes; `watch` polls the
file's metadata and swaps in a new `SiteTable`. A file that does not read keeps the last good
table. The table in use is made again on every change of the file or the policy: a site the
policy dropped, or whose secret changed, leaves routing at once, before the sidecar removes its
peer. Nothing here runs per request but `resolve`, a dict lookup.
"""

import logging
from collections.abc import Callable
from pathlib import Path

from core.balance import Upstreams
from core.policy.compiled import Policy
from core.policy.model import Target
from core.tunnels import Protocol, SiteTable, load_sites
from core.watch import watch_file

log = logging.getLogger("warren.tunnels")

type OfflineListener = Callable[[str], None]


class SiteRoutes:
    def __init__(self, path: Path, upstreams: Upstreams, on_offline: OfflineListener) -> None:
        self.path = path
        self.table = SiteTable()  # what routing uses
        self._upstreams = upstreams
        self._on_offline = on_offline  # told of every site that leaves routing, after the swap
        self._reported = SiteTable()  # sites.json as read, before the policy's check
        self._policy: Policy | None = None

    def resolve(self, target: Target, protocol: Protocol = "tcp") -> tuple[str, int] | None:
        return self.table.resolve(target, protocol)

    async def watch(self, interval: float) -> None:
        async def reread() -> None:
            self.read()

        await watch_file(self.path, interval, reread)

    def read(self) -> None:
        try:
            table = load_sites(self.path)
        except FileNotFoundError:
            table = SiteTable()
        except (OSError, ValueError) as error:
            log.error("%s unreadable, keeping the sites as they were: %s", self.path, error)
            return
        self._reported = table
        if self._policy is not None:
            self.apply(self._policy)

    def apply(self, policy: Policy) -> None:
        self._policy = policy
        before, self.table = self.table, self._reported.for_policy(policy.model)
        self._upstreams.set_unroutable(self.table.unroutable(policy))
        self._log_changes(policy, before)
        for site in sorted(before.routable_sites() - self.table.routable_sites()):
            try:
                self._on_offline(site)
            except Exception:  # the new table is in place whatever the listener does
                log.exception("reacting to site %s going offline failed", site)

    def _log_changes(self, policy: Policy, before: SiteTable) -> None:
        for name in sorted(set(policy.model.sites) | before.routable_sites()):
            old, new = before.get(name), self.table.get(name)
            was, now = old is not None and old.online, new is not None and new.online
            if was != now:
                where = f" at {new.address}" if new is not None else ""
                state = "online" if now else "OFFLINE"
                log.warning("site %s is %s%s%s", name, state, where, self._why(policy, name))

    def _why(self, policy: Policy, name: str) -> str:
        entry, route = policy.model.sites.get(name), self._reported.get(name)
        if entry is None:
            return " (no longer in the policy)"
        if (
            route is not None
            and route.online
            and route.secret_sha256 not in (None, entry.secret_sha256)
        ):
            return " (its secret changed: it must register again)"
        return ""
