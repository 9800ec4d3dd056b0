"""The nodes sharing storage, as their heartbeats say: each node writes its own NodeRecord under
`warren:cluster:node:<name>` every HEARTBEAT_SECONDS with an expiry of NODE_TTL_SECONDS, so a
node that dies leaves the list on its own; everyone reads everyone's (`live_nodes`).

Two nodes must never heartbeat under one name: they would overwrite each other's record and
keys. A record carries its writer's `instance` (random, per process) and `machine` (random, per
state_dir), and `publish` refuses, in one server-side step, to replace a live record another
machine wrote; a process of the same machine (the gateway restarted after a crash, before its
old record expired) takes the name over.

`remove` (what `warren nodes remove` does) marks a name `removed:<name>` for as long as a
session lives and deletes its record and published keys at once: no node trusts its keys
after that (core.cluster.keys), and `publish` refuses the name while the mark lasts.

Readers never SCAN: the store also holds sessions, revocations and rate-limit counters, and a
SCAN walks all of them. Each kind of entry has an index, a sorted set of names scored by when
the name was last written (`index:node`, `index:keys`, `index:removed`); readers take the names
from it and the entries by MGET, and an entry that expired is simply missing. Writers prune
names not written for a day.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, cast

from core.cluster.records import NodeRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.cluster")

PREFIX = "warren:cluster:"
CHANGES = PREFIX + "changes"  # pub/sub: "node:<name>", "keys:<name>", "removed:<name>"
HEARTBEAT_SECONDS = 2.0
NODE_TTL_SECONDS = 10.0  # five missed heartbeats: a node busy for a moment is not dropped


def node_key(name: str) -> str:
    return f"{PREFIX}node:{name}"


def keys_key(name: str) -> str:
    return f"{PREFIX}keys:{name}"


def removed_key(name: str) -> str:
    return f"{PREFIX}removed:{name}"


def index_key(kind: str) -> str:
    """The names of `kind` ("node", "keys", "removed") that have been written."""
    return f"{PREFIX}index:{kind}"


PRUNE_AFTER_SECONDS = 86400.0  # an index entry not written for this long goes


class Published(StrEnum):
    OK = "ok"
    TAKEN = "taken"  # another live process holds this name
    REMOVED = "removed"  # `warren nodes remove` took this name out of the cluster


# KEYS: node:<name>, removed:<name>, index:node; ARGV: record JSON, instance, ttl in ms, now,
# name, prune before, machine. One script, so no other writer can slip in between the look and
# the write (Redis runs scripts atomically).
_PUBLISH = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'removed' end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, held = pcall(cjson.decode, current)
  if ok and type(held) == 'table' and held['instance'] ~= ARGV[2]
     and (ARGV[7] == '' or held['machine'] ~= ARGV[7]) then return 'taken' end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
return 'ok'
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def publish(redis: "Redis", record: NodeRecord, ttl: float = NODE_TTL_SECONDS) -> Published:
    """Write this node's record unless another live instance holds the name or it was removed."""
    keys = [node_key(record.name), removed_key(record.name), index_key("node")]
    now = time.time()
    answer = await cast(
        Awaitable[bytes | str],
        redis.eval(
            _PUBLISH,
            len(keys),
            *keys,
            record.to_json(),
            record.instance,
            int(ttl * 1000),
            repr(now),
            record.name,
            repr(now - PRUNE_AFTER_SECONDS),
            record.machine,
        ),
    )
    return Published(_text(answer))


async def withdraw(redis: "Redis", name: str, instance: str) -> None:
    """On a clean stop: the record goes at once (if it is still this instance's), the keys stay
    until their expiry, so sessions this node signed keep working on the others."""
    current = await read_node(redis, name)
    if current is not None and current.instance == instance:
        await redis.delete(node_key(name))
        await redis.publish(CHANGES, f"node:{name}")


async def read_node(redis: "Redis", name: str) -> NodeRecord | None:
    value = await redis.get(node_key(name))
    return None if value is None else _parsed(name, value)


async def indexed(redis: "Redis", kind: str, key_of: Callable[[str], str]) -> dict[str, str | None]:
    """Each name the index of `kind` holds, with its entry (None: expired or deleted)."""
    members = await cast(Awaitable[list[bytes | str]], redis.zrange(index_key(kind), 0, -1))
    names = [_text(name) for name in members]
    if not names:
        return {}
    values = await redis.mget([key_of(name) for name in names])
    return {
        name: None if value is None else _text(value)
        for name, value in zip(names, values, strict=True)
    }


async def removed_names(redis: "Redis") -> set[str]:
    marks = await indexed(redis, "removed", removed_key)
    return {name for name, mark in marks.items() if mark is not None}


async def live_nodes(redis: "Redis") -> list[NodeRecord]:
    """Every node whose heartbeat has not expired and that was not removed, by name."""
    entries = await indexed(redis, "node", node_key)
    if not entries:
        return []
    names, values = list(entries), list(entries.values())
    removed = await removed_names(redis)
    records = []
    for name, value in zip(names, values, strict=True):
        if value is None or name in removed:
            continue  # expired between the scan and the read, or removed meanwhile
        record = _parsed(name, value)
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda record: record.name)


async def remove(redis: "Redis", name: str, keep_for: float) -> bool:
    """Take `name` out of the cluster for `keep_for` seconds (a session's lifetime): its keys are
    no longer trusted anywhere. True when the node had a live record or published keys."""
    now = time.time()
    async with redis.pipeline(transaction=True) as steps:
        steps.set(removed_key(name), str(now), px=max(1, int(keep_for * 1000)))
        steps.delete(node_key(name), keys_key(name))
        steps.zadd(index_key("removed"), {name: now})
        steps.zremrangebyscore(index_key("removed"), "-inf", now - keep_for - PRUNE_AFTER_SECONDS)
        results = await steps.execute()
    await redis.publish(CHANGES, f"removed:{name}")
    return int(results[1]) > 0


async def readmit(redis: "Redis", name: str) -> bool:
    """Lift a removal before it expires (the node was taken out by mistake, or rebuilt)."""
    deleted = int(await redis.delete(removed_key(name)))
    await redis.zrem(index_key("removed"), name)
    await redis.publish(CHANGES, f"readmitted:{name}")
    return deleted > 0


def _parsed(name: str, value: bytes | str) -> NodeRecord | None:
    try:
        record = NodeRecord.from_json(value)
    except ValueError as error:
        log.warning("the record of node %s is unreadable, ignored: %s", name, error)
        return None
    return record if record.name == name else None
