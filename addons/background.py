"""Addons that keep one background loop per runtime (the ACME loop, the heartbeat, the sync of
pushed documents): started once mitmproxy's start-up check is over, started again for a new
runtime when warren_config changes, ended with the gateway.

A subclass says what to run for a runtime (`open`); this class owns when.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from addons.runtime import Runtime, RuntimeSlot


@dataclass(frozen=True, slots=True)
class Opened[T]:
    value: T  # what the addon answers from while the loop runs (its status, its refusals)
    run: Callable[[], Coroutine[Any, Any, None]]
    close: Callable[[], Awaitable[None]]  # after the loop was cancelled


class RuntimeLoop[T]:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        self._running = False
        self._current: tuple[Opened[T], asyncio.Task[None]] | None = None
        slot.on_swap(self._swapped)

    def open(self, runtime: Runtime) -> Opened[T] | None:
        """What to run for `runtime`; None when its settings ask for nothing."""
        raise NotImplementedError

    @property
    def current(self) -> T | None:
        return None if self._current is None else self._current[0].value

    async def running(self) -> None:
        self._running = True
        if self.slot.runtime is not None:
            self._start(self.slot.runtime)

    async def done(self) -> None:
        self._running = False
        await self._stop()

    def _swapped(self, runtime: Runtime) -> None:
        if self._running:  # a new warren_config while running: its settings, its loop
            asyncio.get_running_loop().create_task(self._restart(runtime))

    async def _restart(self, runtime: Runtime) -> None:
        await self._stop()
        self._start(runtime)

    def _start(self, runtime: Runtime) -> None:
        opened = self.open(runtime)
        if opened is not None:
            task = asyncio.get_running_loop().create_task(after_startup(opened.run))
            self._current = (opened, task)

    async def _stop(self) -> None:
        if self._current is None:
            return
        opened, task = self._current
        self._current = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await opened.close()


async def after_startup(loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the loop once mitmproxy's start-up check has stopped listening: it ends the process
    on any error logged while the gateway starts, and what these loops meet at once (a CA that
    refuses, a name another node holds, a push this node refuses) is no reason not to serve:
    they retry, and say why, from then on."""
    from mitmproxy import ctx

    check = ctx.master.addons.get("errorcheck")
    handler = getattr(check, "logger", None)
    while check is not None and handler in logging.getLogger().handlers:
        await asyncio.sleep(0.05)
        check = ctx.master.addons.get("errorcheck")  # the lean master removes it when done
    await loop()
