"""Whether the shared storage keeps what must outlive a restart: sign-outs, a user's "every
session before now", lockout counters, revoked share links exist only there (docs/nodes.md,
"What Redis must keep"). A Redis restarted without persistence forgets them, and signed-out
sessions work again on every node.

Asked of the server itself: `CONFIG GET appendonly` and `save` (AOF on, or RDB save points);
a managed server that refuses CONFIG is asked `INFO persistence`, which tells whether AOF is on
but not whether snapshots are configured, so that case says it could not be checked.
`warren check` and `warren nodes` print the answer as a warning; nothing fails on it.
"""

import contextlib
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core.storage import is_shared, redact, redis_client
from core.storagefailure import REDIS_FAILURES, reason

if TYPE_CHECKING:
    from redis.asyncio import Redis

CHECK_TIMEOUT_SECONDS = 3.0


async def persistence_problem(storage_url: str) -> str | None:
    """What is wrong with how `storage_url` persists, in one sentence; None when nothing is
    (or the storage is not shared: then sign-in state is in state_dir's SQLite file)."""
    if not is_shared(storage_url):
        return None
    where = redact(storage_url)
    client = redis_client(
        storage_url,
        decode_responses=True,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        try:
            appendonly = await client.config_get("appendonly")
            save = await client.config_get("save")
        except REDIS_FAILURES as error:
            return f"could not ask {where} whether it persists: {reason(error)}"
        except RedisError as refused:  # CONFIG disabled or not allowed for this user
            return await _from_info(client, where, refused)
        if appendonly.get("appendonly") == "yes":
            return None
        if str(save.get("save", "")).strip():
            return None  # RDB snapshots: survives a restart, loses what came after the last
        return (
            f"{where} persists nothing (appendonly no, no save points): after a restart, "
            "sign-outs, lockouts and revoked share links are forgotten and signed-out sessions "
            "work again; set `appendonly yes` (docs/nodes.md, What Redis must keep)"
        )
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _from_info(client: "Redis", where: str, refused: RedisError) -> str | None:
    try:
        info = await client.info("persistence")
    except (RedisError, OSError) as error:
        return (
            f"could not check whether {where} persists: CONFIG GET refused ({refused}) "
            f"and INFO persistence too ({reason(error)})"
        )
    if str(info.get("aof_enabled", "0")) == "1":
        return None
    return (
        f"could not check whether {where} persists: CONFIG GET refused ({refused}); AOF is off, "
        "so make sure RDB snapshots are on (docs/nodes.md, What Redis must keep)"
    )
