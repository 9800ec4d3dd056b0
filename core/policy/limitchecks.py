"""Checks on a policy's `rate_limits` that span keys, each at the key to fix; and warnings, which
do not stop a policy from loading but are printed by `warren check` and logged by the gateway.

Here rather than in core.ratelimit: they walk policy.yaml's resources, and the policy imports
rate limiting, never the other way."""

from collections.abc import Iterator
from pathlib import Path

from core.policy.model import PolicyFile
from core.problems import Loc, Problem, dotted
from core.ratelimit.compiled import GLOBAL_SCOPE, fingerprint
from core.ratelimit.spec import RateLimit
from core.yamlfile import locate

_RAW_PER = ("ip", "resource")


def _all_limits(model: PolicyFile) -> Iterator[tuple[str, Loc, RateLimit, str]]:
    for index, limit in enumerate(model.rate_limits):
        yield GLOBAL_SCOPE, ("rate_limits", index), limit, "http"
    for name, resource in model.resources.items():
        for index, limit in enumerate(resource.rate_limits):
            yield name, ("resources", name, "rate_limits", index), limit, resource.protocol


def rate_limit_problems(model: PolicyFile) -> list[Problem]:
    return [*_raw_resource_limits(model), *_duplicates(model)]


def _raw_resource_limits(model: PolicyFile) -> Iterator[Problem]:
    for _scope, loc, limit, protocol in _all_limits(model):
        if protocol == "http":
            continue
        if limit.per.kind not in _RAW_PER:
            yield Problem(
                (*loc, "per"),
                f"a {protocol} resource limits connections per ip or per resource; "
                f"it has no {limit.per.kind} to count",
            )
        for key in ("path", "method"):
            if getattr(limit, key) is not None:
                yield Problem((*loc, key), f"a {protocol} resource has no {key} to match")
        if limit.headers:
            yield Problem((*loc, "headers"), f"a {protocol} resource has no HTTP headers to add")


def _duplicates(model: PolicyFile) -> Iterator[Problem]:
    seen: dict[tuple[str, ...], Loc] = {}
    for scope, loc, limit, _protocol in _all_limits(model):
        same = (scope, fingerprint(limit), limit.strategy, limit.limit.replace(" ", ""))
        if same in seen:
            yield Problem(
                loc, f"the same limit as {dotted(seen[same])}: each request would count twice"
            )
        seen.setdefault(same, loc)


def rate_limit_warnings(model: PolicyFile, *, sign_in: bool) -> list[Problem]:
    if sign_in:
        return []
    return [
        Problem(
            (*loc, "per"),
            "per: user counts each client IP instead until sign-in is configured on this node "
            "(no request has a signed-in user before then)",
        )
        for _scope, loc, limit, _protocol in _all_limits(model)
        if limit.per.kind == "user"
    ]


def located_warnings(model: PolicyFile, source: Path | None, *, sign_in: bool) -> list[Problem]:
    """The warnings with the file and line they point at (the file is read again only if any)."""
    warnings = rate_limit_warnings(model, sign_in=sign_in)
    if not warnings or source is None:
        return warnings
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [Problem(w.loc, w.message, source) for w in warnings]
    return locate(text, warnings, source)
