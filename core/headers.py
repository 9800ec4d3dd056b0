"""Header fields as a proxy must read them, so one request cannot mean two things.

- A field value may not hold CR, LF, NUL or other controls but HTAB (RFC 9110 §5.5): a
  backend that splits on a bare CR would read a second header Warren never saw. Obs-fold
  continuation lines (RFC 9112 §5.2) reach Warren as a value with CRLF inside and are refused
  the same way.
- A header name that only Warren may set is compared the way CGI-style backends (WSGI, PHP-FPM,
  Rack) read names: case-insensitive, `_` equal to `-`, since they map both to `HTTP_X_Y`.
- Hop-by-hop fields and the ones a client nominates in `Connection` end at Warren
  (RFC 9110 §7.6.1); only a WebSocket upgrade goes on (RFC 6455 §4.1), never h2c (RFC 9113 §3.1).
"""

import re
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import itemgetter

type Field = tuple[bytes, bytes]

# RFC 9110 §5.5: field-content is VCHAR, obs-text, SP and HTAB; CR, LF and NUL never. Looked
# for by deleting them (bytes.translate): four times faster than a regular expression over a
# long value, such as a Cookie header with a session token.
_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
# RFC 9110 §5.1 / §9.1: names and methods are tokens.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_LINES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*")

# RFC 9110 §7.6.1, plus Proxy-Connection (never standard, still honoured by some hops) and
# HTTP2-Settings (RFC 9113 §3.1 removed the h2c upgrade it belongs to).
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate", b"http2-settings",
})  # fmt: skip
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# Nominating these in Connection would change how the message is framed or routed after Warren
# decided on it; such a request is refused rather than re-framed.
_NOT_NOMINABLE = _FRAMING | {b"host"}
_NAME, _VALUE = itemgetter(0), itemgetter(1)


def cgi_name(name: bytes) -> bytes:
    """The name as a CGI-style backend reads it: `Remote_User` and `remote-user` are one."""
    return name.lower().replace(b"_", b"-")


def lowered_names(fields: Sequence[Field]) -> list[bytes]:
    """Every field's name lowered, in order: all of them in one pass in C, not a Python step
    each (every request's fields are looked through several times)."""
    return _each(b"\n".join(map(_NAME, fields)).lower(), fields, bytes.lower)


def cgi_names(fields: Sequence[Field]) -> list[bytes]:
    """Every field's CGI name, in order, the same way."""
    return _each(b"\n".join(map(_NAME, fields)).lower().replace(b"_", b"-"), fields, cgi_name)


def _each(joined: bytes, fields: Sequence[Field], one: Callable[[bytes], bytes]) -> list[bytes]:
    names = joined.split(b"\n")
    if len(names) == len(fields):
        return names
    return [one(name) for name, _value in fields]  # no fields, or a line feed in a name


def is_token(value: bytes) -> bool:
    return _TOKEN.fullmatch(value) is not None


def head_size(fields: Sequence[Field]) -> int:
    """The bytes of these fields in an HTTP/1 head: each `name: value` and its CRLF."""
    return sum(map(len, chain.from_iterable(fields))) + 4 * len(fields)


def field_problem(fields: Sequence[Field]) -> str | None:
    """Why these header fields cannot be forwarded as they are, or None."""
    if _all_well_formed(fields):
        return None
    for name, value in fields:  # which field, and what is wrong with it
        if not is_token(name):
            return f"the header name {name[:40]!r} is not a token"
        if b"_" in name and cgi_name(name) in _FRAMING:
            # Transfer_Encoding frames the body for a server that reads names the CGI way, and
            # not for Warren: one request could be read as two.
            return f"{name.decode()} reads as a framing header to some servers"
        if len(value.translate(None, _CONTROLS)) != len(value):
            return f"the {name[:40].decode('latin-1')} header holds a control character"
    return None


def _all_well_formed(fields: Sequence[Field]) -> bool:
    # Every field at once, in C: the names one line each, every one a token (none holds a line
    # feed: then the count of lines differs), none with `_`; the values together without a
    # control character. Nearly every request passes; one that does not is looked at field by
    # field for the reason.
    names = b"\n".join(map(_NAME, fields))
    values = b"".join(map(_VALUE, fields))
    return (
        _TOKEN_LINES.fullmatch(names) is not None
        and names.count(b"\n") == len(fields) - 1
        and b"_" not in names
        and len(values.translate(None, _CONTROLS)) == len(values)
    )


def positions(fields: Sequence[Field], lowered: bytes) -> list[int]:
    """Where the fields named `lowered` (in any case) are: found in C where a name comes once."""
    names = lowered_names(fields)
    count = names.count(lowered)
    if count < 2:
        return [names.index(lowered)] if count else []
    return [index for index, name in enumerate(names) if name == lowered]


def tokens(value: bytes) -> list[bytes]:
    """A comma-separated list's elements, lower-cased, without empty ones (RFC 9110 §5.6.1)."""
    return [part for part in (p.strip().lower() for p in value.split(b",")) if part]


def nominated(fields: Sequence[Field]) -> frozenset[bytes]:
    """The names every `Connection` field lists, as CGI names."""
    if b"connection" not in lowered_names(fields):  # most requests: learnt without a loop
        return frozenset()
    found: set[bytes] = set()
    for name, value in fields:
        if name.lower() == b"connection":
            found.update(cgi_name(token) for token in tokens(value))
    return frozenset(found)


def connection_options(nominations: frozenset[bytes]) -> bytes | None:
    """The `Connection` value to go on with: the client's `close` (or `keep-alive`), nothing
    it nominated. mitmproxy reads it from the forwarded request when it decides whether to keep
    the client's connection open."""
    if b"close" in nominations:
        return b"close"
    return b"keep-alive" if b"keep-alive" in nominations else None


def connection_problem(fields: Sequence[Field]) -> str | None:
    bad = nominated(fields) & _NOT_NOMINABLE
    if bad:
        return f"Connection nominates {b', '.join(sorted(bad)).decode()}"
    return None


def is_websocket_upgrade(method: str, fields: Sequence[Field]) -> bool:
    """An RFC 6455 §4.1 opening handshake: GET, `Upgrade: websocket` and nothing else,
    `Connection: upgrade`, a key and version 13."""
    if method != "GET" or b"upgrade" not in lowered_names(fields):
        return False
    upgrade: list[bytes] = []
    connection: list[bytes] = []
    key = version = False
    for name, value in fields:
        lowered = name.lower()
        if lowered == b"upgrade":
            upgrade += tokens(value)
        elif lowered == b"connection":
            connection += tokens(value)
        elif lowered == b"sec-websocket-key":
            key = bool(value.strip())
        elif lowered == b"sec-websocket-version":
            version = value.strip() == b"13"
    return upgrade == [b"websocket"] and b"upgrade" in connection and key and version


class HeaderNames:
    """Names (and `prefix*` patterns) compared as CGI names; what `strip_headers` lists."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[bytes] = set()
        prefixes: list[bytes] = []
        for pattern in patterns:
            name = cgi_name(pattern.encode("ascii"))
            if name.endswith(b"*"):
                prefixes.append(name[:-1])
            else:
                exact.add(name)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    @classmethod
    def of(cls, exact: Iterable[bytes], prefixes: Iterable[bytes]) -> "HeaderNames":
        """Names and prefixes that are CGI names already."""
        names = cls(())
        names._exact, names._prefixes = frozenset(exact), tuple(prefixes)
        return names

    def __or__(self, other: "HeaderNames") -> "HeaderNames":
        return HeaderNames.of(self._exact | other._exact, self._prefixes + other._prefixes)

    def __contains__(self, cgi: bytes) -> bool:
        return cgi in self._exact or (bool(self._prefixes) and cgi.startswith(self._prefixes))

    def kept(self, fields: Sequence[Field], also: frozenset[bytes] = frozenset()) -> list[Field]:
        """The fields named by none of these, nor by a CGI name in `also`."""
        exact, prefixes = self._exact | also if also else self._exact, self._prefixes
        return [
            field
            for field, cgi in zip(fields, cgi_names(fields), strict=True)
            if cgi not in exact and not cgi.startswith(prefixes)
        ]


def valid_pattern(pattern: str) -> bool:
    """A header name, or a name prefix followed by one `*`."""
    name = pattern.removesuffix("*")
    return bool(name) and "*" not in name and is_token(name.encode("ascii", "replace"))
