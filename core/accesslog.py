"""The gateway's access log: where its lines go, in which format, and the last refusals kept for
the admin console.

One line per request. The lines of one turn of the event loop are written together, with one
`os.write` at the end of that turn, on a descriptor opened for appending (O_APPEND: lines are
never interleaved with another writer's): a write per request costs the kernel an inode update
each, and at a thousand requests a second that was a tenth of the gateway's time. Nothing waits
longer than the loop's turn, and the lines still pending are written at reopen and close. Without
a running loop (a command, a test) each line is written at once. The file is opened
again on SIGUSR1, which is what logrotate's `postrotate` sends (`kill -USR1`): the old file,
moved aside, is closed and a new one made at the configured path. A write that fails (a full
disk) is logged once as a warning and never fails a request; the next write that succeeds says
so.

JSON, one object per line; the human format only on a terminal (`auto`) or when asked for
(`human`).
"""

import asyncio
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote_plus

from core.auth.cookies import SHARE_PARAMETER
from core.logs import Format

log = logging.getLogger("warren.accesslog")

RECENT = 200  # refusals kept for the admin console
_BATCH = 64 * 1024  # bytes pending that are written at once, without waiting for the turn's end
_FILE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FILE_MODE = 0o640  # client addresses and user names: not for every account on the host


type Record = Mapping[str, object]


class AccessWriter:
    """Lines to standard output (`path` None) or to a file, appended."""

    def __init__(self, path: Path | None, format: Format) -> None:
        self.path = path
        self._failing = False
        self._pending: list[str] = []
        if path is None:
            if sys.stdout is None:  # started with standard output closed
                raise OSError("there is no standard output")
            self._fd = sys.stdout.fileno()
            self._owned = False
        else:
            self._fd = os.open(path, _FILE_FLAGS, _FILE_MODE)
            self._owned = True
        self.human = format == "human" or (format == "auto" and os.isatty(self._fd))

    def write(self, record: Record) -> None:
        line = human_line(record) if self.human else json.dumps(record)  # json's cached encoder
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                return
            except RuntimeError:  # no running loop: nothing would come back for the line
                pass
        elif len(pending) * len(line) < _BATCH:
            return
        self.flush()

    def flush(self) -> None:
        """Write the pending lines, in one `write` as far as the kernel takes it."""
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode()
        self._pending.clear()
        try:
            if not self._owned:
                sys.stdout.flush()  # whatever Python wrote to stdout before stays before this line
            written = os.write(self._fd, data)
            while written < len(data):  # a signal can cut a write to a pipe short
                written += os.write(self._fd, data[written:])
        except (OSError, ValueError) as error:
            if not self._failing:
                self._failing = True
                log.warning(
                    "the access log cannot be written (%s): lines are lost until it can", error
                )
            return
        if self._failing:
            self._failing = False
            log.warning("the access log is written again")

    def reopen(self) -> None:
        """After logrotate moved the file: a new file at the path. If it cannot be made, the
        old descriptor is kept, and the lines keep going where they went."""
        if self.path is None:
            return
        self.flush()  # what was logged before the rotation goes to the file moved aside
        try:
            fd = os.open(self.path, _FILE_FLAGS, _FILE_MODE)
        except OSError as error:
            log.warning(
                "cannot reopen the access log %s (%s); still writing to the old one",
                self.path,
                error,
            )
            return
        old, self._fd = self._fd, fd
        os.close(old)
        log.info("access log reopened: %s", self.path)

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._owned = False
            os.close(self._fd)


class RecentRefusals:
    """The last refused requests' records (status >= 400), newest first."""

    def __init__(self, size: int = RECENT) -> None:
        self._records: deque[Record] = deque(maxlen=size)

    def add(self, record: Record) -> None:
        self._records.appendleft(record)

    def newest_first(self) -> list[Record]:
        return list(self._records)


def loggable_query(query: str) -> str:
    """A query string as the log may show it (only with `logging.access_query`): a share link's
    token taken out, the rest as sent. `query` has no leading `?`."""
    if SHARE_PARAMETER not in query and "%" not in query:  # the name may come percent-encoded
        return query
    kept = [
        part for part in query.split("&") if unquote_plus(part.partition("=")[0]) != SHARE_PARAMETER
    ]
    return "&".join(kept)


# The order of a human line's trailing fields; those not named here are not shown.
_HUMAN_FIELDS = (
    "client",
    "resource",
    "rule",
    "reason",
    "user",
    "upstream",
    "upstream_ms",
    "bytes",
    "duration_ms",
    "reference",
)


def human_line(record: Record) -> str:
    """`2026-12-02 18:36:21.123 INFO gateway GET app.example/x -> 403 deny client=... ...`"""
    stamp = str(record.get("time", ""))
    fields = " ".join(
        f"{key}={record[key]}" for key in _HUMAN_FIELDS if record.get(key) is not None
    )
    status = record.get("status")
    return (
        f"{stamp[:10]} {stamp[11:23]} INFO gateway {record.get('method')} "
        f"{record.get('host')}{record.get('path')} -> {status if status is not None else '-'} "
        f"{record.get('decision')} {fields}"
    ).rstrip()
