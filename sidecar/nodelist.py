"""Which nodes a site agent should keep a tunnel to: the sidecar's registration answer lists every
live node with a `node.url` (core.cluster.registry's heartbeats), this node included.

Read from storage in the background, never on a registration: a registration answers from the
last list read, so storage being slow or down delays no site (the list then stays as it was,
and the agent keeps the links it has).
"""

import asyncio
import logging
from typing import TYPE_CHECKING, TypedDict

from core.cluster.registry import live_nodes
from core.settings import Settings
from core.storage import is_shared, redact, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.sidecar")

READ_EVERY = 2.0  # seconds: a node's heartbeat interval (core.cluster.registry)


class NodeEntry(TypedDict):
    name: str
    url: str


class NodeList:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.node_name
        self.url = settings.node.url
        self.storage = settings.storage
        self._others: list[NodeEntry] = []
        self._failing = False

    def current(self) -> list[NodeEntry]:
        """This node (when it has a URL) and the others last read, by name."""
        own: list[NodeEntry] = [] if self.url is None else [{"name": self.name, "url": self.url}]
        return sorted(own + self._others, key=lambda entry: entry["name"])

    async def read(self, redis: "Redis") -> None:
        records = await live_nodes(redis)
        self._others = [
            {"name": record.name, "url": record.url}
            for record in records
            if record.url is not None and record.name != self.name
        ]

    async def follow(self) -> None:
        """Forever (a task of `warren sidecar`): read the live nodes every heartbeat. Nothing to
        do with `memory://` storage: a single node lists only itself."""
        if not is_shared(self.storage):
            return
        redis = redis_client(self.storage, socket_timeout=2, socket_connect_timeout=2)
        try:
            while True:
                try:
                    await self.read(redis)
                except Exception as error:  # storage down: keep the last list, say so once
                    if not self._failing:
                        log.warning(
                            "cannot read the node list from %s (answering the last one): %r",
                            redact(self.storage),
                            error,
                        )
                    self._failing = True
                else:
                    if self._failing:
                        log.info("reading the node list again")
                    self._failing = False
                await asyncio.sleep(READ_EVERY)
        finally:
            await redis.aclose()
