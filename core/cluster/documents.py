"""policy.yaml and users.yaml pushed once for all nodes: `warren policy push` / `warren users
push` store a versioned copy under `warren:cluster:document:<kind>`, every node's sync
(core.cluster.sync) writes it into its own file.

A push is one server-side script (Redis runs scripts atomically), so two pushes never interleave:
each gets the next version of its kind, the current copy and the history agree, and the change
is announced on the cluster's channel in the same step.
"""

import hashlib
import json
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Self, cast

from core.cluster.registry import CHANGES, PREFIX

if TYPE_CHECKING:
    from redis.asyncio import Redis

HISTORY = 10  # versions kept beside the current one, for a rollback or a look back


class Kind(StrEnum):
    POLICY = "policy"
    USERS = "users"


def document_key(kind: Kind) -> str:
    return f"{PREFIX}document:{kind}"


def version_key(kind: Kind, version: int) -> str:
    return f"{document_key(kind)}:{version}"


def counter_key(kind: Kind) -> str:
    return f"{document_key(kind)}:counter"


def announcement(kind: Kind) -> str:
    return f"document:{kind}"


def digest_of(text: str) -> str:
    """The digest Warren shows for a policy everywhere (core.policy.load), so `warren nodes` can
    compare what a node runs with what was pushed."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PushedDocument:
    kind: Kind
    version: int
    digest: str
    text: str
    pushed_at: float
    pushed_by: str  # the node name of the machine the push ran on

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, value: str | bytes) -> Self:
        """Raises ValueError for anything that is not a pushed document."""
        try:
            data = json.loads(value)
            return cls(
                kind=Kind(data["kind"]),
                version=int(data["version"]),
                digest=str(data["digest"]),
                text=str(data["text"]),
                pushed_at=float(data["pushed_at"]),
                pushed_by=str(data["pushed_by"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a pushed document: {error}") from None

    def is_taken_as(self, applied: "Applied | None") -> bool:
        """Whether it is the push a node last took. Any other is taken, lower versions too: the
        store then started counting again (a Redis that lost its data) and holds what was pushed
        since, whatever the pushing machines' clocks say."""
        return applied is not None and (applied.version, applied.pushed_at) == (
            self.version,
            self.pushed_at,
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """Which push a node's file came from (core.cluster.sync keeps it in state_dir)."""

    version: int
    digest: str
    pushed_at: float


# KEYS: document, counter; ARGV: kind, digest, text, pushed_at, pushed_by, history, channel,
# announcement. The document is encoded here, with the version the counter just gave.
_PUSH = """
local version = redis.call('INCR', KEYS[2])
local document = cjson.encode({kind = ARGV[1], version = version, digest = ARGV[2],
  text = ARGV[3], pushed_at = tonumber(ARGV[4]), pushed_by = ARGV[5]})
redis.call('SET', KEYS[1], document)
redis.call('SET', KEYS[1] .. ':' .. version, document)
local old = version - tonumber(ARGV[6])
if old > 0 then redis.call('DEL', KEYS[1] .. ':' .. old) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return document
"""


async def push(redis: "Redis", kind: Kind, text: str, pushed_by: str) -> PushedDocument:
    """Store `text` (validated by the caller) as the next version of `kind` for every node."""
    keys = [document_key(kind), counter_key(kind)]
    stored = await cast(
        Awaitable[bytes | str],
        redis.eval(
            _PUSH,
            len(keys),
            *keys,
            str(kind),
            digest_of(text),
            text,
            repr(time.time()),
            pushed_by,
            HISTORY,
            CHANGES,
            announcement(kind),
        ),
    )
    return PushedDocument.from_json(stored)


async def current(redis: "Redis", kind: Kind) -> PushedDocument | None:
    """The last pushed copy, or None when nothing was ever pushed (or the store lost it)."""
    value = await redis.get(document_key(kind))
    return None if value is None else PushedDocument.from_json(value)


async def at_version(redis: "Redis", kind: Kind, version: int) -> PushedDocument | None:
    """One of the last HISTORY versions; None for an older one."""
    value = await redis.get(version_key(kind, version))
    return None if value is None else PushedDocument.from_json(value)
