"""This node's heartbeat: every HEARTBEAT_SECONDS its NodeRecord (core.cluster.registry) and its
public signing keys (core.cluster.keys), for as long as the gateway runs with shared storage.

A name another live node holds is not taken: the heartbeat says so in the log at every attempt
and tries again each interval (a misconfigured twin that stops frees the name within
NODE_TTL_SECONDS). This node's own previous process, crashed, is no twin: it shares the
state_dir, and so the machine id. A node `warren nodes remove` took out stops publishing
for the rest of its process: nothing it publishes would be trusted, and an admin must decide
it may come back (`warren nodes readmit NAME`, then a restart). It keeps serving its own
users meanwhile, as a single node would.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from core.cluster.keys import publish_keys
from core.cluster.records import DocumentState, NodeRecord, WireGuardFacts
from core.cluster.registry import HEARTBEAT_SECONDS, Published, publish, withdraw

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.cluster")


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the running node knows about itself at one heartbeat."""

    url: str | None
    wireguard: WireGuardFacts
    policy: DocumentState
    users: DocumentState
    sites_online: tuple[str, ...]
    ready: bool
    version: str


@dataclass
class Heartbeat:
    redis: "Redis"
    name: str
    facts: Callable[[], NodeFacts]
    jwks: Callable[[], dict[str, Any]]  # this node's public keys (KeyRing.own_jwks)
    keep_keys_for: float  # session.ttl: what this node signed outlives its last heartbeat
    machine: str = ""  # core.cluster.facts.machine_id: this node's state_dir
    interval: float = HEARTBEAT_SECONDS
    instance: str = field(default_factory=lambda: secrets.token_hex(8))
    started: float = field(default_factory=time.time)
    last: Published | None = None  # the last answer storage gave
    _unreachable: bool = False

    async def beat(self) -> Published:
        facts = self.facts()
        record = NodeRecord(
            name=self.name,
            instance=self.instance,
            machine=self.machine,
            heartbeat=time.time(),
            started=self.started,
            url=facts.url,
            wireguard=facts.wireguard,
            policy=facts.policy,
            users=facts.users,
            sites_online=facts.sites_online,
            ready=facts.ready,
            version=facts.version,
        )
        answer = await publish(self.redis, record)
        if answer is Published.OK and not await publish_keys(
            self.redis, self.name, self.jwks(), self.keep_keys_for
        ):
            answer = Published.REMOVED  # removed between the record and the keys
        self.last = answer
        return answer

    async def run(self) -> None:
        """Until cancelled, or until this node learns it was removed."""
        while True:
            try:
                answer = await self.beat()
            except (RedisError, OSError) as error:  # storage down: serve on, say so once
                if not self._unreachable:
                    log.warning("heartbeat: storage unreachable (%s); retrying", error)
                self._unreachable = True
            except Exception:  # a fact that could not be gathered: say which, try again
                log.exception("heartbeat of %s failed; retrying", self.name)
            else:
                if self._unreachable:
                    log.info("heartbeat: storage reachable again")
                self._unreachable = False
                if answer is Published.REMOVED:
                    log.error(
                        "node %s was removed from the cluster (warren nodes remove): its keys "
                        "are trusted by no other node, and it no longer heartbeats. To bring it "
                        "back: warren nodes readmit %s, then restart its gateway",
                        self.name,
                        self.name,
                    )
                    return
                if answer is Published.TAKEN:
                    log.error(
                        "another running node already heartbeats as %r: set a unique node.name "
                        "in warren.yaml (this one does not publish until that name is free)",
                        self.name,
                    )
            await asyncio.sleep(self.interval)

    async def withdraw(self) -> None:
        """On a clean stop: out of the list at once (its keys stay, for its sessions)."""
        if self.last is Published.OK:
            await withdraw(self.redis, self.name, self.instance)
