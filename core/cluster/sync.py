"""Every node takes the pushed policy and users (core.cluster.documents) into its own files.

The node follows the cluster's channel, and looks at the versions every `poll_seconds` as well
(a message is lost while the connection is down). A document other than the one this node last
took is handed to the kind's `Adopt`, which validates it as this node and writes it over the
node's file, or refuses it and leaves the file as it was. The files stay the truth each process
reads: a node that starts while storage is unreachable runs its last good local copy, and
`warren check` / `warren explain` read what the node runs.

Which push each file came from is kept in state_dir/pushed.json, so a restarted node does not take
again a document it already took (and undo an admin's later edit of the file by hand).
"""

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core.auth.users import parse_users, replace_text
from core.cluster.documents import (
    Applied,
    Kind,
    PushedDocument,
    announcement,
    current,
    digest_of,
)
from core.cluster.registry import CHANGES
from core.files import write_atomically
from core.policy.store import PolicyStore
from core.problems import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.cluster.sync")

PUSHED_FILE = "pushed.json"
FIRST_RETRY_SECONDS = 0.5  # then doubled after each failure, up to poll_seconds

type Adopt = Callable[[PushedDocument], Awaitable[str | None]]  # None: taken; else why not


@dataclass(frozen=True, slots=True)
class Refusal:
    version: int
    digest: str
    error: str


def read_applied(state_dir: Path) -> dict[Kind, Applied]:
    """What state_dir/pushed.json says this node took; nothing for a file that is unreadable
    (the node then takes the current push again, which is what it would serve anyway)."""
    try:
        data = json.loads((state_dir / PUSHED_FILE).read_text())
        return {Kind(kind): Applied(**fields) for kind, fields in data.items()}
    except (OSError, ValueError, TypeError) as error:
        if not isinstance(error, FileNotFoundError):
            log.warning(
                "%s is unreadable (%s); starting from the pushed copies", PUSHED_FILE, error
            )
        return {}


def write_applied(state_dir: Path, applied: Mapping[Kind, Applied]) -> None:
    data = {str(kind): asdict(taken) for kind, taken in applied.items()}
    write_atomically(state_dir / PUSHED_FILE, json.dumps(data, indent=2).encode(), 0o644)


class DocumentSync:
    def __init__(
        self,
        redis: "Redis",
        adopters: Mapping[Kind, Adopt],
        state_dir: Path,
        *,
        poll_seconds: float = 5.0,
    ) -> None:
        self.redis = redis
        self.adopters = dict(adopters)
        self.state_dir = state_dir
        self.poll_seconds = poll_seconds
        self.applied = read_applied(state_dir)
        self.refused: dict[Kind, Refusal] = {}
        self._unreachable = False
        self._delay = FIRST_RETRY_SECONDS

    async def run(self) -> None:
        """Until cancelled; a storage outage is waited out with jittered backoff, the node
        serving what its files hold meanwhile."""
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as error:
                if not self._unreachable:
                    log.warning(
                        "storage unreachable (%s): pushed policy and users wait; this node "
                        "serves its local files",
                        error,
                    )
                self._unreachable = True
            except Exception:  # the node serves its files whatever goes wrong here
                log.exception("following pushed policy and users failed; starting again")
            await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
            self._delay = min(self._delay * 2, self.poll_seconds)

    async def _follow(self) -> None:
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(CHANGES)
            await self.check_all()  # after subscribing: a push in between is not missed
            self._delay = FIRST_RETRY_SECONDS
            if self._unreachable:
                log.info("storage reachable again: following pushed policy and users")
                self._unreachable = False
            wanted = {announcement(kind).encode(): kind for kind in self.adopters}
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.poll_seconds
                )
                if message is None:
                    await self.check_all()
                elif (kind := wanted.get(_bytes(message.get("data")))) is not None:
                    await self.check(kind)

    async def check_all(self) -> None:
        for kind in self.adopters:
            await self.check(kind)

    async def check(self, kind: Kind) -> None:
        try:
            document = await current(self.redis, kind)
        except ValueError as unreadable:  # a foreign writer's value: nothing to take
            log.warning("the pushed %s in storage is unreadable, ignored: %s", kind, unreadable)
            return
        if document is None or document.is_taken_as(self.applied.get(kind)):
            return
        refused = self.refused.get(kind)
        if refused is not None and refused.version == document.version:
            return  # said once; the node keeps its copy until a newer push
        try:
            error = await self.adopters[kind](document)
        except OSError as failure:  # a read-only mount: refused like a file that does not load
            error = f"cannot write this node's {kind} file: {failure.strerror or failure}"
        if error is not None:
            self.refused[kind] = Refusal(document.version, document.digest, error)
            log.error(
                "pushed %s version %d (%s, from %s) refused; still serving the local copy:\n%s",
                kind,
                document.version,
                document.digest,
                document.pushed_by,
                error,
            )
            return
        self.refused.pop(kind, None)
        self.applied[kind] = Applied(document.version, document.digest, document.pushed_at)
        await asyncio.to_thread(write_applied, self.state_dir, self.applied)
        log.info("pushed %s version %d (%s) taken", kind, document.version, document.digest)


def policy_adopter(store: PolicyStore) -> Adopt:
    """Into the gateway's PolicyStore: validated with this node's capabilities, written over
    policy_file, swapped in at once (the portal and sidecar follow the file as they always do)."""

    async def adopt(document: PushedDocument) -> str | None:
        if store.current.digest == document.digest == await _file_digest(store.path):
            return None  # the push came from this node's own file
        return (await store.adopt(document.text)).error

    return adopt


def users_adopter(path: Path) -> Adopt:
    """Over users_file, which the portal reads at every sign-in and the gateway within a
    second; a copy that does not validate leaves the file as it was."""

    async def adopt(document: PushedDocument) -> str | None:
        if await _file_digest(path) == document.digest:
            return None
        try:
            parse_users(document.text, path)
        except ConfigError as error:
            return str(error)
        await asyncio.to_thread(replace_text, path, document.text)
        return None

    return adopt


async def _file_digest(path: Path) -> str | None:
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return digest_of(text)


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()
