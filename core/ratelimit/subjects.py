"""Who a limit counts: request facts in, a counter key out. Pure, so every caller (the gateway,
the sign-in portal's brute-force regulation, raw TCP/UDP connections) keys the same way.

Keys never contain the policy's version: a reload keeps counting where it was.
"""

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from ipaddress import IPv6Address
from typing import NamedTuple

from core.ipsets import IPAddress
from core.ratelimit.spec import Per

# An IPv6 client usually holds a whole /64 and can pick a new address from it for each request;
# counting per address would let it walk around any per-ip limit.
IPV6_PREFIX = 64


class Requester(NamedTuple):
    ip: IPAddress  # the client address (core.clientip: forwarded only by trusted proxies)
    user: str | None = None  # the signed-in identity, once sign-in has established one
    headers: Mapping[str, str] | None = None  # case-insensitive, e.g. mitmproxy's Headers


@lru_cache(maxsize=16384)  # formatting an address costs more than the cache lookup
def ip_subject(ip: IPAddress, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """An IPv4 address as it is; an IPv6 one as its network of `ipv6_prefix` bits."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        shift = 128 - ipv6_prefix
        return f"ip:{IPv6Address(int(ip) >> shift << shift)}/{ipv6_prefix}"
    return f"ip:{ip}"


def subject(per: Per, requester: Requester, resource: str) -> str:
    """The part of a counter's key that says whose requests it counts.

    `user` without a signed-in identity, and `header:NAME` without that header, count the client
    address instead: leaving the header out never escapes a limit. Header values are hashed so
    keys stay short and secrets such as API keys never reach the storage.
    """
    if per.kind == "ip":
        return ip_subject(requester.ip)
    if per.kind == "resource":
        return f"resource:{resource}"
    if per.kind == "user":
        return f"user:{requester.user}" if requester.user else ip_subject(requester.ip)
    assert per.header is not None
    value = requester.headers.get(per.header) if requester.headers is not None else None
    if not value:
        return ip_subject(requester.ip)
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"header:{per.header}:{digest}"
