"""The running policy: loaded once, swapped whole on reload, the last good one kept on failure."""

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.files import write_atomically
from core.policy.check import Capabilities
from core.policy.compiled import Policy
from core.policy.load import load_policy, parse_policy
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
        self._refused: str | None = None  # the digest of the file last refused

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def status(self) -> dict[str, object]:
        """What `warren status` shows of the policy, the same from every process."""
        return {
            "policy": str(self.path),
            "digest": self.current.digest,
            "resources": len(self.current.resources),
            "rules": self.current.rule_count,
            "reloads": self.reloads,
            "failed_reloads": self.failed_reloads,
            "last_error": self.last_error,
        }

    async def reload_async(
        self, *, force: bool = True, capabilities: Capabilities | None = None
    ) -> ReloadResult:
        """`capabilities`: what the node is now (its settings' files may have changed), kept
        with the policy when it loads."""
        # Parsing and compiling run in a thread so the event loop keeps answering requests; the
        # swap itself happens back on the loop, in one assignment.
        async with self._lock:
            started = time.perf_counter()
            wanted = capabilities or self.capabilities
            unchanged = wanted == self.capabilities
            if not force and unchanged and await asyncio.to_thread(self._unchanged):
                return self._result(True, False, started)
            try:
                policy = await asyncio.to_thread(load_policy, self.path, wanted)
            except ConfigError as error:
                return self._refuse(str(error), started)
            self.capabilities = wanted
            self._swap(policy)
            return self._result(True, True, started)

    async def adopt(self, text: str) -> ReloadResult:
        """A policy pushed for every node (core.cluster.sync): validated as this node would load
        it, and only then written over the policy file and swapped in, without waiting for the
        file's watch. One this node refuses leaves the file and the running policy as they were,
        the reason in `last_error` (the heartbeat reports it)."""
        async with self._lock:
            started = time.perf_counter()
            try:
                policy = await asyncio.to_thread(parse_policy, text, self.capabilities, self.path)
            except ConfigError as error:
                return self._refuse(str(error), started, pushed=True)
            try:
                await asyncio.to_thread(
                    write_atomically, self.path, text.encode(), self._file_mode()
                )
            except OSError as error:  # a read-only mount: the node cannot keep it, so runs none
                reason = f"{self.path}: cannot write the pushed policy: {error.strerror or error}"
                return self._refuse(reason, started, pushed=True)
            self._swap(policy)
            return self._result(True, True, started)

    def _file_mode(self) -> int:
        # The portal and the sidecar, maybe running as other accounts, read the same file.
        try:
            return os.stat(self.path).st_mode & 0o777
        except OSError:
            return 0o644

    def _unchanged(self) -> bool:
        """Whether the file holds what is running, or what was last refused (a watch that
        fires again on the same broken file has nothing new to say)."""
        try:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        except OSError:
            return False
        return digest in (self.current.digest, self._refused)

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

    def _refuse(self, error: str, started: float, *, pushed: bool = False) -> ReloadResult:
        if not pushed:  # a pushed copy never reaches the file: what the file holds is as it was
            try:
                self._refused = hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
            except OSError:
                self._refused = None
        self.failed_reloads += 1
        self.last_error = error
        what = "pushed policy" if pushed else "policy reload"
        log.error("%s refused, still running %s:\n%s", what, self.current.digest, error)
        return self._result(False, False, started, error)

    def _result(
        self, ok: bool, changed: bool, started: float, error: str | None = None
    ) -> ReloadResult:
        policy = self.current
        return ReloadResult(
            ok, changed, policy.digest, policy.rule_count, time.perf_counter() - started, error
        )
