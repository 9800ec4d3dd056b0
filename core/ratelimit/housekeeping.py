"""One sweep a second for the in-memory storage, instead of one per counted request.

limits' async MemoryStorage forgets expired counters in a task it starts on every counting call,
whenever its previous one has finished; on a busy gateway that is a new task per request, and
for moving windows a worker-thread hop per client each time, which cost more than the counting.
Its counts stay correct without that task (reads check expiry themselves); the task only frees
memory. So Warren runs the storage's own sweep once a second in one long-lived task, which it
installs as the storage's `timer`: the storage starts another only when that one is done.

Nothing here counts. If a limits release renames what this relies on, `take_over` declines and
the storage keeps its own housekeeping; if the sweep ever fails, its task ends and the storage
resumes its own at the next call.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("warren.ratelimit")

SWEEP_INTERVAL_S = 1.0


def take_over(storage: Any, interval: float = SWEEP_INTERVAL_S) -> asyncio.Task[None] | None:
    from limits.aio.storage import MemoryStorage

    expire: Callable[[], Awaitable[None]] | None = getattr(
        storage, "_MemoryStorage__expire_events", None
    )
    if not isinstance(storage, MemoryStorage) or expire is None or not hasattr(storage, "timer"):
        return None
    task = asyncio.get_running_loop().create_task(_sweep(expire, interval))
    storage.timer = task
    return task


async def _sweep(expire: Callable[[], Awaitable[None]], interval: float) -> None:
    try:
        while True:
            await asyncio.sleep(interval)
            await expire()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sweeping the in-memory rate-limit storage failed; it sweeps by itself now")
