"""Request paths: one canonical form for matching and forwarding, and the path patterns rules use.

The canonical form is computed once per request. It is what rules see and what the backend
receives, so the two can never disagree. Anything a backend might read in more than one way is
refused instead of guessed.
"""

import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters RFC 3986 allows raw in a path segment (pchar without pct-encoded), plus "/".
_PATH_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/"
)
# A path with none of these is already canonical unless it has "//" or a dot-segment.
_NEEDS_WORK = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_HEX_BYTES = frozenset(bytes((b,)) for b in _HEX)


class AmbiguousPath(ValueError):
    """The path could be read differently by different servers; it is refused, not guessed."""


class CanonicalPath(NamedTuple):
    path: str  # forwarded to the backend
    match: str  # what rules match: `path` with ;parameters removed from every segment


def split_target(target: str) -> tuple[str, str]:
    path, sep, query = target.partition("?")
    return path, sep + query


def canonicalize(path: str) -> CanonicalPath:
    if not path.startswith("/"):
        raise AmbiguousPath("the path does not start with /")
    if _NEEDS_WORK.search(path) is None and "//" not in path and "/." not in path:
        if ";" not in path:
            return CanonicalPath(path, path)
        _resolve_dot_segments(path)  # refuses parameter-only and parameterised dot segments
        return CanonicalPath(path, _strip_parameters(path))
    canonical = _resolve_dot_segments(_normalise_encoding(path))
    return CanonicalPath(canonical, _strip_parameters(canonical) if ";" in canonical else canonical)


def _normalise_encoding(path: str) -> str:
    # mitmproxy hands us the raw target decoded with surrogateescape; this gets the bytes back.
    raw = path.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x25:  # "%"
            out += _decode_escape(raw, i)
            i += 3
            continue
        if byte < 0x20 or byte == 0x7F:
            raise AmbiguousPath("the path contains a control character")
        if byte == 0x5C:
            raise AmbiguousPath("the path contains a backslash")
        out += bytes((byte,)) if byte in _PATH_SAFE else b"%%%02X" % byte
        i += 1
    _require_utf8(out)
    return out.decode("ascii")


def _decode_escape(raw: bytes, i: int) -> bytes:
    pair = raw[i + 1 : i + 3]
    if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
        raise AmbiguousPath("the path has an invalid percent-encoding")
    value = int(pair, 16)
    if value == 0x2F:
        raise AmbiguousPath("the path contains an encoded slash")
    if value == 0x5C:
        raise AmbiguousPath("the path contains an encoded backslash")
    if value < 0x20 or value == 0x7F:
        raise AmbiguousPath("the path contains an encoded control character")
    if value == 0x3B:
        raise AmbiguousPath("the path contains an encoded semicolon")
    if value == 0x25 and raw[i + 3 : i + 4] in _HEX_BYTES and raw[i + 4 : i + 5] in _HEX_BYTES:
        raise AmbiguousPath("the path is percent-encoded twice")
    if value in _UNRESERVED:
        return bytes((value,))
    return b"%%%02X" % value


def _require_utf8(encoded: bytearray) -> None:
    # Escapes that are not UTF-8 (overlong dots, stray bytes) mean different things to different
    # servers.
    if b"%" not in encoded:
        return
    try:
        unquote_to_bytes(bytes(encoded)).decode("utf-8")
    except UnicodeDecodeError:
        raise AmbiguousPath("the path's percent-encoding is not valid UTF-8") from None


def _resolve_dot_segments(path: str) -> str:
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        bare = segment.partition(";")[0]
        if segment != bare and bare in (".", ".."):
            raise AmbiguousPath("the path has a dot-segment with parameters")
        if segment != bare and not bare:
            # Servers that drop ;parameters would see an empty segment and merge or climb it.
            raise AmbiguousPath("a path segment holds only ;parameters")
        if segment == "..":
            if not out:
                raise AmbiguousPath("the path climbs above the root")
            out.pop()
            if index == last:
                out.append("")
        elif segment == ".":
            if index == last:
                out.append("")
        elif segment or index == last:
            out.append(segment)
    return "/" + "/".join(out)


def _strip_parameters(path: str) -> str:
    return "/".join(segment.partition(";")[0] for segment in path.split("/"))


class PathPattern:
    """A compiled glob. `key` is the literal directory every matching path lies under (for an
    exact pattern, the path itself).

    A glob's regular expression is built and compiled on its first match, not when the policy
    loads: it is made of escaped literals and fixed fragments, so it cannot fail, and a large
    policy would otherwise spend much of its reload on expressions few requests ever reach.
    """

    __slots__ = ("_regex", "key", "kind", "source")

    def __init__(self, source: str, kind: str, key: str) -> None:
        self.source = source
        self.kind = kind  # "exact", "subtree" (a literal directory and all below it) or "glob"
        self.key = key
        self._regex: re.Pattern[str] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathPattern) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"PathPattern({self.source!r})"

    def matches(self, match_path: str) -> bool:
        if self.kind == "exact":
            return match_path == self.key
        if self.kind == "subtree":
            key = self.key
            return match_path.startswith(key) and (
                len(match_path) == len(key) or match_path[len(key)] == "/"
            )
        regex = self._regex
        if regex is None:
            regex = self._regex = _glob_regex(self.source)
        return regex.fullmatch(match_path) is not None


_WILDCARD = re.compile(r"\*\*|\*|\?")
_WILDCARD_REGEX = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


def compile_pattern(source: str) -> PathPattern:
    """Compile a rule's path glob.

    `*` matches within one segment, `**` across segments, `?` one character other than `/`.
    A pattern ending in `/*` or `/**` covers the whole subtree including its root:
    `/admin/*` matches `/admin`, `/admin/` and `/admin/a/b`.
    """
    _validate_pattern(source)
    subtree, body = _subtree_and_body(source)
    if "*" not in body and "?" not in body:  # most patterns: a literal path or directory
        literal = _canonical_literal(body)
        if subtree:
            return PathPattern(source, "subtree", literal.rstrip("/"))
        return PathPattern(source, "exact", literal)
    _, literals, _ = pattern_parts(source)
    return PathPattern(source, "glob", _directory_key(literals[0], True))


def _subtree_and_body(source: str) -> tuple[bool, str]:
    subtree = source.endswith(("/*", "/**")) and len(source) > 1
    return subtree, source[: source.rindex("/")] if subtree else source


def pattern_parts(source: str) -> tuple[bool, list[str], list[str]]:
    """Whether the pattern covers a subtree, its canonical literal pieces, and the wildcards
    between them."""
    subtree, body = _subtree_and_body(source)
    literals = [_canonical_literal(piece) for piece in _WILDCARD.split(body)]
    return subtree, literals, _WILDCARD.findall(body)


def _glob_regex(source: str) -> re.Pattern[str]:
    subtree, literals, wildcards = pattern_parts(source)
    regex = re.escape(literals[0])
    for wildcard, literal in zip(wildcards, literals[1:], strict=True):
        regex += _WILDCARD_REGEX[wildcard] + re.escape(literal)
    if subtree:
        regex += "(?:/.*)?"
    return re.compile(regex)


def _validate_pattern(source: str) -> None:
    if not source.startswith("/"):
        raise ValueError("a path pattern starts with /")
    if ";" in source:
        raise ValueError("a path pattern cannot contain ';' (rules match paths without parameters)")
    # An empty or dot segment anywhere: between two slashes, or last.
    if "//" in source or "/./" in source or "/../" in source or source.endswith(("/.", "/..")):
        raise ValueError("a path pattern cannot contain empty or dot segments")


def _canonical_literal(piece: str) -> str:
    if _NEEDS_WORK.search(piece) is None:
        return piece
    try:
        return _normalise_encoding(piece)
    except AmbiguousPath as error:
        raise ValueError(f"invalid path pattern: {error}") from None


def _directory_key(prefix: str, has_wildcard: bool) -> str:
    """The deepest whole directory every match lies under ("" for the root)."""
    if has_wildcard:
        prefix = prefix[: prefix.rfind("/")] if "/" in prefix else ""
    return prefix.rstrip("/")


def ancestors(match_path: str) -> list[str]:
    """Every directory key a path lies under, root ("") first, the path itself last."""
    keys = [""]
    index = match_path.find("/", 1)
    while index != -1:
        keys.append(match_path[:index])
        index = match_path.find("/", index + 1)
    stripped = match_path.rstrip("/")
    if stripped and stripped != keys[-1]:
        keys.append(stripped)
    return keys


def literal_prefix(pattern: PathPattern) -> str:
    """The literal text every path the pattern matches starts with: for an exact pattern the
    path, for a subtree its directory, for a glob what comes before its first wildcard."""
    if pattern.kind != "glob":
        return pattern.key
    return pattern_parts(pattern.source)[1][0]


def literal_path(value: str) -> str:
    """A path with no wildcard, in canonical form, that is not the root and does not end in "/"
    (a route's strip_prefix or add_prefix: it stands for whole segments)."""
    if "*" in value or "?" in value or ";" in value:
        raise ValueError(f"{value!r} is a literal path: no wildcards, no ';'")
    try:
        canonical = canonicalize(value).path
    except AmbiguousPath as error:
        raise ValueError(f"{value!r} is not a path: {error}") from None
    if canonical == "/" or canonical.endswith("/"):
        raise ValueError(f"{value!r} must name a directory like /api, without a trailing '/'")
    return canonical
