"""What the console reads from the node's other processes: the gateway's and the sidecar's
control sockets (core.control, the same answers `warren status` prints) and, with shared
storage, the live nodes' heartbeats (core.cluster.registry, what `warren nodes` lists).

A process that does not answer is a fact to show ("not reachable"), never an error page: the
console is what an operator opens when something is down. Each read has a short timeout and runs
in a thread (the control client is blocking), so a stuck process cannot hold the portal.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import control
from core.cluster.records import NodeRecord
from core.settings import Settings
from core.storage import is_shared, redact
from core.tunnels import sidecar_socket

log = logging.getLogger("warren.portal")

TIMEOUT_SECONDS = 3.0
NOT_REACHABLE = "not reachable"
NOT_AVAILABLE = "not available"


@dataclass(frozen=True, slots=True)
class Answer:
    """A control socket's reply, or why there is none (`problem`, shown as is)."""

    reply: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


async def ask(path: Path, command: str) -> Answer:
    try:
        reply = await asyncio.to_thread(control.call, path, command, TIMEOUT_SECONDS)
    except (OSError, ValueError) as error:  # no socket, refused, timed out, half a reply
        log.debug("control %s %s: %r", path, command, error)
        return Answer(problem=NOT_REACHABLE)
    if not isinstance(reply, dict):
        return Answer(problem=NOT_REACHABLE)
    if reply.get("ok") is not True:
        said = str(reply.get("error") or "failed")
        # An older gateway without the command answers so: the feature is missing, not broken.
        return Answer(reply, NOT_AVAILABLE if said == "unknown command" else said)
    return Answer(reply)


async def gateway_status(settings: Settings) -> Answer:
    return await ask(settings.control_path, "status")


async def sidecar_status(settings: Settings) -> Answer:
    return await ask(sidecar_socket(settings.state_dir), "status")


async def refusals(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """The gateway's last refused requests, newest first, from its access log's ring."""
    return await refusals_at(settings.control_path)


async def refusals_at(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    answer = await ask(path, "refusals")
    found = answer.reply.get("refusals") if answer.ok else None
    if answer.ok and not isinstance(found, list):
        return [], NOT_AVAILABLE
    return [entry for entry in found or [] if isinstance(entry, dict)], answer.problem


@dataclass(frozen=True, slots=True)
class Nodes:
    shared: bool  # several nodes may share the storage: the list is theirs, else this node only
    records: list[NodeRecord]
    problem: str | None = None


async def live_nodes(settings: Settings) -> Nodes:
    if not is_shared(settings.storage):
        return Nodes(False, [])
    from core.cluster.registry import live_nodes as read
    from core.storage import redis_client

    redis = redis_client(settings.storage, socket_connect_timeout=TIMEOUT_SECONDS)
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS * 2):
            return Nodes(True, await read(redis))
    except Exception as error:  # redis' errors are not OSErrors: any failure reads the same
        log.info("console: storage %s did not answer: %r", redact(settings.storage), error)
        return Nodes(True, [], f"storage {NOT_REACHABLE}")
    finally:
        await redis.aclose()
