"""Keeping what a process loaded from a file current, the same way in every Warren process.

A reload is asked for three ways: a change to the file (its metadata polled, see core.watch),
SIGHUP, and `reload` on the process's control socket (core.control), which also answers the
process's own commands (`status`). A change that leaves the contents as they were reloads nothing
(`force=False`); SIGHUP and the socket always re-read (`force=True`). What a reload does, and
that a file which does not validate keeps the last good one, is the callback's business.
"""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from core import control
from core.logs import event
from core.watch import watch_file

log = logging.getLogger("warren.reloading")


class Outcome(Protocol):
    def as_dict(self) -> dict[str, object]: ...


class Reload(Protocol):
    def __call__(self, *, force: bool) -> Awaitable[Outcome]: ...


class Reloading:
    """The running watches, SIGHUP handler and control socket of one process; `close()` ends
    them all. Made by `await Reloading.start(...)`, inside the running event loop."""

    def __init__(self, reload: Reload, control_path: Path) -> None:
        self._reload = reload
        self._control_path = control_path
        self._control: asyncio.Server | None = None
        self._socket_inode: int | None = None
        self._sighup = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()  # close() may be called from outside it

    @classmethod
    async def start(
        cls,
        *,
        files: Sequence[Path],
        interval: float,
        reload: Reload,
        control_path: Path,
        commands: Mapping[str, control.Handler] | None = None,
    ) -> "Reloading":
        if commands and "reload" in commands:
            raise ValueError("`reload` is the reload callback's; name the command otherwise")
        reloading = cls(reload, control_path)
        reloading._control = await control.serve(
            control_path, {**(commands or {}), "reload": reloading._answer_reload}
        )
        reloading._socket_inode = os.stat(control_path).st_ino
        reloading._install_sighup()
        for path in files:
            reloading._spawn(watch_file(path, interval, reloading._on_change, _missing(path)))
        return reloading

    def close(self) -> None:
        """Idempotent; the socket is removed unless another process has put its own there."""
        for task in list(self._tasks):
            task.cancel()
        if self._sighup:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        if self._control is not None:
            self._control.close()
            self._control = None
            if _inode(self._control_path) == self._socket_inode:
                self._control_path.unlink(missing_ok=True)

    def _install_sighup(self) -> None:
        try:
            self._loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        except (NotImplementedError, RuntimeError, ValueError) as error:
            # Not the main thread (an embedding test harness): the watch and socket still work.
            log.warning("SIGHUP will not reload here (%s)", error)
            return
        self._sighup = True

    def _on_hangup(self) -> None:
        log.info("SIGHUP: reloading")
        self._spawn(self._reload_logging_errors())

    async def _reload_logging_errors(self) -> None:
        try:
            _report("signal", await self._reload(force=True))
        except Exception:  # a signal has no one to answer: the log is where this goes
            log.exception("reloading on SIGHUP failed")

    async def _on_change(self) -> None:
        _report("file", await self._reload(force=False))

    async def _answer_reload(self) -> dict[str, Any]:
        reply = dict((await self._reload(force=True)).as_dict())
        _report("control", reply)
        return reply

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _report(trigger: str, outcome: Outcome | Mapping[str, object]) -> None:
    """The `reload` and `reload-failed` events (core.logs), the same from every process: a
    changed file that loaded, or one refused (what ran before keeps running). A watch that found
    the contents as they were says nothing; SIGHUP and `warren reload` always answer."""
    found = outcome if isinstance(outcome, Mapping) else outcome.as_dict()
    digest = found.get("digest")
    changed = bool(found.get("changed", True))
    if not found.get("ok", True):
        error = found.get("error")
        event(
            log, "reload-failed", trigger=trigger, digest=digest, error=error, level=logging.ERROR
        )
    elif changed or trigger != "file":
        event(log, "reload", trigger=trigger, digest=digest, changed=changed)


def _missing(path: Path) -> Callable[[], None]:
    def say() -> None:
        log.warning("%s is missing; what was loaded from it keeps running", path)

    return say


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
