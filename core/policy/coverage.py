"""Whether a path pattern can match a path that none of some other patterns match: what tells a
route that can never be chosen (core.policy.routes) from one that overlaps others.

The patterns are regular (core.paths: literals, `*` = `[^/]*`, `**` = `.*`, `?` = `[^/]`, a
subtree's `(/.*)?`), so this is decided exactly, not by sampling: a walk over the pairs of state
sets of two small automata, one for the pattern and one for the union of the others, on an
alphabet of the characters the patterns spell out, "/", and one character none of them names
(every other character behaves alike). The pattern can match a path of its own exactly when
some word leads its automaton to acceptance and the union's away from it.
"""

from collections import deque
from collections.abc import Iterable, Sequence

from core.paths import PathPattern, pattern_parts

type Token = str  # one literal character, or "*", "**", "?"
type Alternative = tuple[Token, ...]
type State = tuple[int, int]  # (alternative, position in it)
type States = frozenset[State]

_WILDCARDS = ("*", "**", "?")
_OTHER = "\x00"  # stands for every character no pattern spells out; never in a canonical path


def alternatives(pattern: PathPattern) -> list[Alternative]:
    """The pattern as token sequences, any of which a matching path follows."""
    if pattern.kind == "exact":
        return [tuple(pattern.key)]
    if pattern.kind == "subtree":
        return [tuple(pattern.key), (*pattern.key, "/", "**")]
    subtree, literals, wildcards = pattern_parts(pattern.source)
    body: list[Token] = list(literals[0])
    for wildcard, literal in zip(wildcards, literals[1:], strict=True):
        body += [wildcard, *literal]
    return [tuple(body), (*body, "/", "**")] if subtree else [tuple(body)]


class _Automaton:
    def __init__(self, patterns: Iterable[PathPattern]) -> None:
        self.alternatives = [alt for pattern in patterns for alt in alternatives(pattern)]

    def start(self) -> States:
        return self._closure({(index, 0) for index in range(len(self.alternatives))})

    def accepts(self, states: States) -> bool:
        return any(position == len(self.alternatives[alt]) for alt, position in states)

    def step(self, states: States, symbol: str) -> States:
        after: set[State] = set()
        for alt, position in states:
            tokens = self.alternatives[alt]
            if position == len(tokens):
                continue
            wanted = tokens[position]
            if wanted == "**" or (wanted == "*" and symbol != "/"):
                after.add((alt, position))  # a wildcard takes the character and stays
            elif (wanted == "?" and symbol != "/") or wanted == symbol:
                after.add((alt, position + 1))
        return self._closure(after)

    def _closure(self, states: set[State]) -> States:
        """With every wildcard that can match nothing skipped ("?" takes exactly one)."""
        todo, seen = list(states), set(states)
        while todo:
            alt, position = todo.pop()
            tokens = self.alternatives[alt]
            skipped = (alt, position + 1)
            if position < len(tokens) and tokens[position] in ("*", "**") and skipped not in seen:
                seen.add(skipped)
                todo.append(skipped)
        return frozenset(seen)


def _alphabet(automata: Sequence[_Automaton]) -> list[str]:
    spelled = {
        token
        for automaton in automata
        for alt in automaton.alternatives
        for token in alt
        if token not in _WILDCARDS
    }
    return sorted(spelled | {"/", _OTHER})


def matches_beyond(pattern: PathPattern, others: Sequence[PathPattern]) -> bool:
    """Whether some path matches `pattern` and none of `others`."""
    return path_beyond(pattern, others) is not None


def path_beyond(pattern: PathPattern, others: Sequence[PathPattern]) -> str | None:
    """A shortest path that matches `pattern` and none of `others`, or None. It may hold the
    stand-in for "any other character", which matches as such a character would."""
    return _first_path(_Automaton([pattern]), _Automaton(others), want_second=False)


def overlap(first: PathPattern, second: PathPattern) -> bool:
    """Whether some path matches both."""
    return _first_path(_Automaton([first]), _Automaton([second]), want_second=True) is not None


def _first_path(first: _Automaton, second: _Automaton, want_second: bool) -> str | None:
    """A shortest path `first` accepts and `second` accepts too (`want_second`) or does not."""
    alphabet = _alphabet([first, second])
    start = (first.start(), second.start())
    todo, seen = deque([(start, "")]), {start}
    while todo:
        (mine, theirs), path = todo.popleft()
        if first.accepts(mine) and second.accepts(theirs) == want_second:
            return path
        for symbol in alphabet:
            pair = (first.step(mine, symbol), second.step(theirs, symbol))
            if pair[0] and (pair[1] or not want_second) and pair not in seen:
                seen.add(pair)
                todo.append((pair, path + symbol))
    return None
