"""A resource's routes: which one serves a path, and the path its target gets.

Routes match the canonical match path (core.paths) with the rules' own patterns: exact
(`/login`), subtree (`/api/*`: `/api`, `/api/` and everything below) and glob (`/api/v*/x`).
The most specific route that matches wins, whatever the order they are written in:

1. an exact route, then
2. the longest literal prefix (the text before the first wildcard; a subtree's directory), then
3. at an equal prefix, a subtree before a glob, then
4. the route written first.

The rules and sign-in have decided on the client's path before a route is chosen; a rewrite
changes only what the target receives (docs/configuration.md, "Routes").
"""

from dataclasses import dataclass

from core.paths import PathPattern, literal_prefix
from core.policy.coverage import matches_beyond, overlap
from core.policy.model import Rewrite, Route, Target

type Specificity = tuple[int, int, int]


def specificity(pattern: PathPattern) -> Specificity:
    """Larger is more specific: (exact?, length of the literal prefix, subtree over glob)."""
    return (int(pattern.kind == "exact"), len(literal_prefix(pattern)), int(pattern.kind != "glob"))


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    key: str  # "resources.NAME.routes[i]": where it is written; the balancer's turn per route
    index: int
    pattern: PathPattern
    targets: tuple[Target, ...]
    rewrite: Rewrite | None

    def forwarded(self, path: str) -> str:
        """The canonical path the target receives for `path` (the client's canonical path)."""
        return path if self.rewrite is None else rewritten(path, self.rewrite)


class RouteTable:
    """A resource's routes, most specific first; a lookup takes the first that matches."""

    __slots__ = ("_ordered", "routes")

    def __init__(self, scope: str, routes: tuple[Route, ...]) -> None:
        self.routes = tuple(
            CompiledRoute(f"{scope}[{i}]", i, r.path, r.targets, r.rewrite)
            for i, r in enumerate(routes)
        )
        # sorted() is stable, so at equal specificity the route written first stays first.
        self._ordered = sorted(self.routes, key=lambda r: specificity(r.pattern), reverse=True)

    def __bool__(self) -> bool:
        return bool(self.routes)

    def choose(self, match_path: str) -> CompiledRoute | None:
        for route in self._ordered:
            if route.pattern.matches(match_path):
                return route
        return None

    def shadowed(self) -> list[tuple[CompiledRoute, list[CompiledRoute]]]:
        """(route, the routes tried before it that share paths with it) for every route that
        can never be chosen: each path it matches is matched by one tried before it (the same
        pattern, `/api/**` after `/api/*`; a glob inside an earlier one of the same prefix,
        `/f/*a/raw` after `/f/*/raw`; an exact path's only path taken by an earlier exact one).
        Decided exactly (core.policy.coverage), not by trying paths."""
        found = []
        for rank, route in enumerate(self._ordered):
            before = self._ordered[:rank]
            if before and not matches_beyond(route.pattern, [r.pattern for r in before]):
                winners = [r for r in before if overlap(route.pattern, r.pattern)]
                found.append((route, sorted(winners, key=lambda r: r.index)))
        return sorted(found, key=lambda pair: pair[0].index)


def rewritten(path: str, rewrite: Rewrite) -> str:
    """`path` with `strip_prefix`'s segments removed, then `add_prefix` in front. Segments are
    compared without their ;parameters, as the route matched them, and removed with them."""
    rest = path
    if rewrite.strip_prefix is not None:
        count = rewrite.strip_prefix.count("/")
        segments = path.split("/")
        leading = [segment.partition(";")[0] for segment in segments[1 : count + 1]]
        if "/" + "/".join(leading) != rewrite.strip_prefix:
            # The route's pattern lies under strip_prefix (core.policy.model.Route), so a path
            # it matched starts with it; anything else is a bug, refused rather than guessed.
            raise ValueError(f"{path!r} does not start with {rewrite.strip_prefix}")
        rest = "/" + "/".join(segments[count + 1 :]) if len(segments) > count + 1 else ""
    if rewrite.add_prefix is not None:
        return rewrite.add_prefix + rest
    return rest or "/"
