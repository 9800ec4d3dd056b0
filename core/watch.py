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
    path: Path,
    interval: float,
    on_change: Callable[[], Awaitable[object]],
    on_missing: Callable[[], object] | None = None,
) -> None:
    """Call `on_change` on the first poll and whenever the file's metadata changes after;
    `on_missing`, if given, once each time the file goes missing.

    The first call lets the owner compare against what it loaded: the file may have changed
    between loading it and starting to watch.
    """
    last: Signature = None
    missing = False
    while True:
        await asyncio.sleep(interval)
        current = signature(path)
        if current is None and not missing and on_missing is not None:
            try:
                on_missing()
            except Exception:
                log.exception("reacting to %s going missing failed", path)
        missing = current is None
        if current != last and current is not None:
            last = current
            try:
                await on_change()
            except Exception:  # the watch must outlive any one bad reload
                log.exception("reacting to a change of %s failed", path)
