"""The running policy: loaded once, swapped whole on reload, the last good one kept on failure."""

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.policy.check import Capabilities
from core.policy.compiled import Policy
from core.policy.load import load_policy
from core.problems import ConfigError

log = logging.getLogger("warren.policy")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    changed: bool
    digest: str
    rules: int
    seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "digest": self.digest,
            "rules": self.rules,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


type Listener = Callable[[Policy], None]


class PolicyStore:
    def __init__(self, path: Path, capabilities: Capabilities) -> None:
        self.path = path
        self.capabilities = capabilities
        self.current: Policy = load_policy(path, capabilities)
        self.reloads = 0
        self.failed_reloads = 0
        self.last_error: str | None = None
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def reload(self, *, force: bool = True) -> ReloadResult:
        started = time.perf_counter()
        if not force and self._unchanged():
            return self._result(True, False, started)
        try:
            policy = load_policy(self.path, self.capabilities)
        except ConfigError as error:
            return self._refuse(str(error), started)
        self._swap(policy)
        return self._result(True, True, started)

    async def reload_async(self, *, force: bool = True) -> ReloadResult:
        # Parsing and compiling run in a thread so the event loop keeps answering requests; the
        # swap itself happens back on the loop, in one assignment.
        async with self._lock:
            started = time.perf_counter()
            if not force and await asyncio.to_thread(self._unchanged):
                return self._result(True, False, started)
            try:
                policy = await asyncio.to_thread(load_policy, self.path, self.capabilities)
            except ConfigError as error:
                return self._refuse(str(error), started)
            self._swap(policy)
            return self._result(True, True, started)

    def _unchanged(self) -> bool:
        try:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        except OSError:
            return False
        return digest == self.current.digest

    def _swap(self, policy: Policy) -> None:
        self.current = policy
        self.reloads += 1
        self.last_error = None
        log.info(
            "policy %s loaded: %d rules, %d resources",
            policy.digest,
            policy.rule_count,
            len(policy.resources),
        )
        for listener in self._listeners:
            listener(policy)

    def _refuse(self, error: str, started: float) -> ReloadResult:
        self.failed_reloads += 1
        self.last_error = error
        log.error("policy reload refused, still running %s:\n%s", self.current.digest, error)
        return self._result(False, False, started, error)

    def _result(
        self, ok: bool, changed: bool, started: float, error: str | None = None
    ) -> ReloadResult:
        policy = self.current
        return ReloadResult(
            ok, changed, policy.digest, policy.rule_count, time.perf_counter() - started, error
        )
