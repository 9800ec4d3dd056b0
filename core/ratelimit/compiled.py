"""`rate_limits` compiled once per policy: windows parsed, filters ready, counters named.

A counter's name is its scope (every resource, or one) plus a fingerprint of what it counts, never
its position in the file or the policy's version: reloading, or adding a limit above it, keeps its
counts. Changing what a limit counts (its per, path or method) starts afresh, and so does changing
its strategy or windows, which are part of the key `RateLimiter` gives the storage.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from core.paths import PathPattern
from core.ratelimit.spec import FailMode, Per, Rate, RateLimit, parse_rate

# Scope of the global `rate_limits`: they count across every resource. Resource names cannot
# contain "*".
GLOBAL_SCOPE = "*"


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    key: str  # where it is written, for people: "rate_limits[0]", "resources.app.rate_limits[1]"
    rate: Rate
    per: Per
    paths: tuple[PathPattern, ...] | None
    methods: frozenset[str] | None
    counter: str  # scope/fingerprint: the stable name of its counters
    on_storage_error: FailMode
    headers: bool  # RateLimit-* headers on allowed responses

    def applies(self, match_path: str, method: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.paths is None or any(p.matches(match_path) for p in self.paths)

    def describe(self) -> str:
        text = f"{self.rate.text} per {self.per}"
        if self.methods is not None:
            text += f", {'|'.join(sorted(self.methods))}"
        if self.paths is not None:
            text += f" on {', '.join(p.source for p in self.paths)}"
        return f"{text} ({self.rate.strategy} window, on storage error: {self.on_storage_error})"


class Limited(Protocol):
    """What requests count against: a resource's name (`per: resource` counts under it) and
    every limit that applies to it. `core.policy.compiled.CompiledResource` is one; rate limiting
    needs no more of the policy than this."""

    @property
    def name(self) -> str: ...

    @property
    def rate_limits(self) -> tuple[CompiledLimit, ...]: ...


def fingerprint(model: RateLimit) -> str:
    what = {
        "per": str(model.per),
        "path": sorted(p.source for p in model.path) if model.path else None,
        "method": sorted(model.method) if model.method else None,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def compile_limits(
    where: str, scope: str, models: Iterable[RateLimit]
) -> tuple[CompiledLimit, ...]:
    return tuple(
        CompiledLimit(
            key=f"{where}[{index}]",
            rate=parse_rate(model.limit, model.strategy),
            per=model.per,
            paths=model.path,
            methods=frozenset(model.method) if model.method is not None else None,
            counter=f"{scope}/{fingerprint(model)}",
            on_storage_error=model.on_storage_error,
            headers=model.headers,
        )
        for index, model in enumerate(models)
    )
