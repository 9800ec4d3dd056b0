"""The other live nodes as their heartbeats last said (core.cluster.registry), read in the
background every heartbeat so a request never waits on storage: which node has a site online
(where to relay, core.cluster.relay), and whether a node is live (whose relay to accept).

While storage is down the last list stays, and ages: a record whose heartbeat is older than
FRESH_SECONDS names no relay target, since that node may be gone.
"""

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.cluster.records import NodeRecord
from core.cluster.registry import HEARTBEAT_SECONDS, live_nodes
from core.storage import redact, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.cluster")

FRESH_SECONDS = 3 * HEARTBEAT_SECONDS


def origin_address(url: str) -> tuple[str, int]:
    """Where a node's https origin is reached: its host and port (443 unless it says)."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 443


class Peers:
    def __init__(self, storage: str, own_name: str) -> None:
        self.storage = storage
        self.own_name = own_name
        self._records: dict[str, NodeRecord] = {}
        self._carriers: dict[str, str | None] = {}  # site -> the node last chosen, for the log
        self._task: asyncio.Task[None] | None = None
        self._redis: Redis | None = None

    def live(self) -> frozenset[str]:
        return frozenset(self._records)

    def carrying(self, site: str, now: float | None = None) -> NodeRecord | None:
        """A fresh node other than this one with `site` online and an https node.url; ready
        nodes first, then by name (every node picks the same one)."""
        now = time.time() if now is None else now
        found = [
            record
            for record in self._records.values()
            if site in record.sites_online
            and record.url is not None
            and record.url.startswith("https://")
            and now - record.heartbeat <= FRESH_SECONDS
        ]
        found.sort(key=lambda record: (not record.ready, record.name))
        chosen = found[0] if found else None
        name = chosen.name if chosen is not None else None
        if site not in self._carriers or self._carriers[site] != name:
            self._carriers[site] = name
            if name is not None:
                log.info("site %s is offline here: its requests go via node %s", site, name)
            else:
                log.warning("site %s is offline here and on every other live node", site)
        return chosen

    def is_relay_address(self, address: tuple[str, int]) -> bool:
        return any(
            record.url is not None and origin_address(record.url) == address
            for record in self._records.values()
        )

    def replace(self, records: list[NodeRecord]) -> None:
        self._records = {r.name: r for r in records if r.name != self.own_name}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _follow(self) -> None:
        self._redis = redis_client(self.storage, socket_timeout=2, socket_connect_timeout=2)
        failing = False
        while True:
            try:
                self.replace(await live_nodes(self._redis))
            except Exception as error:  # storage down: keep the last list, say so once
                if not failing:
                    log.warning(
                        "cannot read the live nodes from %s (relaying by the last list): %r",
                        redact(self.storage),
                        error,
                    )
                failing = True
            else:
                if failing:
                    log.info("reading the live nodes again")
                failing = False
            await asyncio.sleep(HEARTBEAT_SECONDS)
