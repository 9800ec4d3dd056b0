"""Notice when a file people edit changes: by polling its metadata.

Polling `stat` (following symlinks) sees every way a file gets replaced: in-place writes, editors
that write a temporary file and rename it, and configuration-map symlink swaps, where inotify on
the original inode would go quiet.
"""

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

type Signature = tuple[int, int, int, int] | None

log = logging.getLogger("warren.watch")


def signature(path: Path) -> Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)


async def watch_file(
    path: Path, interval: float, on_change: Callable[[], Awaitable[object]]
) -> None:
    """Call `on_change` on the first poll and whenever the file's metadata changes after.

    The first call lets the owner compare against what it loaded: the file may have changed
    between loading it and starting to watch.
    """
    last: Signature = None
    while True:
        await asyncio.sleep(interval)
        current = signature(path)
        if current != last and current is not None:
            last = current
            try:
                await on_change()
            except Exception:  # the watch must outlive any one bad reload
                log.exception("reacting to a change of %s failed", path)
