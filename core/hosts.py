"""Routing by Host: exact names first, then the most specific wildcard."""

import re
from collections.abc import Iterable

# RFC 9112 §3.2 and RFC 3986 §3.2.2-3: Host is uri-host [":" port], no userinfo. Warren takes a
# DNS-style name (the names resources are written with) or an IP literal, and when there is a
# colon, a port: `pub.test:x@evil.test`, `:80`, `pub.test:` name something else to someone.
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
)


def valid_authority(authority: str) -> bool:
    """Whether a Host header (or HTTP/2 :authority) names one host, and a port if any."""
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return False
    port = match["port"]
    return port is None or 0 < int(port) < 65536


def normalise_host(authority: str) -> str:
    """Lower-case, without port or trailing dot; IPv6 literals keep their brackets."""
    host = authority.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, colon, _port = host.rpartition(":")
    return (name if colon else host).rstrip(".")


class HostTable[T]:
    """`*.example.com` matches every name below example.com at any depth, not example.com itself.

    A more specific wildcard wins over a shorter one, and an exact name over any wildcard.
    """

    __slots__ = ("_exact", "_wildcard")

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        self._exact: dict[str, T] = {}
        self._wildcard: dict[str, T] = {}
        for pattern, value in entries:
            name = normalise_host(pattern)
            if name.startswith("*."):
                self._wildcard[name[2:]] = value
            else:
                self._exact[name] = value

    def lookup(self, authority: str) -> T | None:
        host = normalise_host(authority)
        found = self._exact.get(host)
        if found is not None or not self._wildcard:
            return found
        dot = host.find(".")
        while dot != -1:
            found = self._wildcard.get(host[dot + 1 :])
            if found is not None:
                return found
            dot = host.find(".", dot + 1)
        return None
