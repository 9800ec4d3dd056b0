"""Who is asking: the socket peer, or what a trusted proxy in front of us says the client was."""

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import ip_network
from typing import NamedTuple

from core.ipsets import IPAddress, IPNetwork, IpSet, parse_address

# https://www.cloudflare.com/ips/ (published lists; they change rarely).
CLOUDFLARE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ip_network(cidr)
    for cidr in (
        "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22",
        "141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
        "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
        "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
        "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32",
        "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
    )
)  # fmt: skip


class ForwardingError(ValueError):
    """A trusted proxy sent a forwarded address we cannot read; we refuse rather than guess."""


class ClientAddress(NamedTuple):
    ip: IPAddress
    peer: IPAddress
    via: str  # "peer", "x-forwarded-for" or "cf-connecting-ip"


peer_address = lru_cache(maxsize=8192)(parse_address)


class ProxyTrust:
    """Whose forwarded-for headers count: CIDRs, and Cloudflare's edge (CF-Connecting-IP)."""

    __slots__ = ("_cloudflare", "_proxies")

    def __init__(self, networks: Iterable[IPNetwork], cloudflare: bool) -> None:
        self._proxies = IpSet(networks)
        self._cloudflare = IpSet(CLOUDFLARE_NETWORKS) if cloudflare else IpSet(())

    def __bool__(self) -> bool:
        return bool(self._proxies) or bool(self._cloudflare)

    def resolve(
        self, peer: IPAddress, forwarded_for: str | None, cf_connecting_ip: str | None
    ) -> ClientAddress:
        if peer in self._cloudflare and cf_connecting_ip is not None:
            return ClientAddress(_parse_forwarded(cf_connecting_ip), peer, "cf-connecting-ip")
        if peer not in self._proxies and peer not in self._cloudflare:
            return ClientAddress(peer, peer, "peer")
        if not forwarded_for:
            return ClientAddress(peer, peer, "peer")
        return ClientAddress(
            self._rightmost_untrusted(forwarded_for, peer), peer, "x-forwarded-for"
        )

    def _rightmost_untrusted(self, forwarded_for: str, peer: IPAddress) -> IPAddress:
        # Entries left of the first untrusted hop were written by whoever the client is, so they
        # prove nothing; the rightmost address no trusted proxy vouches for is the client.
        hops = [_parse_forwarded(entry) for entry in forwarded_for.split(",")]
        for hop in reversed(hops):
            if hop not in self._proxies and hop not in self._cloudflare:
                return hop
        return hops[0] if hops else peer


def _parse_forwarded(value: str) -> IPAddress:
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return parse_address(text)
    except ValueError:
        raise ForwardingError(f"unreadable forwarded address {value.strip()[:64]!r}") from None
