"""Putting a database file in place so that no reader ever sees half of it."""

import os
from pathlib import Path


def install(staged: Path, target: Path) -> None:
    """Move `staged` (on the same file system) to `target` in one rename, durably.

    A gateway polling `target` sees the old file or the new one, never a partial write; a
    failure before the rename leaves the old file as it was.
    """
    with open(staged, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(staged, 0o644)
    os.replace(staged, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
