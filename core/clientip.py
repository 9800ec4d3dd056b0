"""Who is asking: the socket peer, or what a trusted proxy in front of us says the client was."""

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from core.ipsets import IPAddress, IPNetwork, IpSet, parse_address


class ForwardingError(ValueError):
    """A trusted proxy sent a forwarded address we cannot read; we refuse rather than guess."""


class ClientAddress(NamedTuple):
    ip: IPAddress
    peer: IPAddress
    via: str  # "peer", "x-forwarded-for" or "cf-connecting-ip"


peer_address = lru_cache(maxsize=8192)(parse_address)


class ProxyTrust:
    """Whose forwarded-for headers count: CIDRs, and Cloudflare's edge (CF-Connecting-IP),
    given as its networks (core.cloudflare) when the policy trusts it."""

    __slots__ = ("_cloudflare", "_proxies")

    def __init__(self, networks: Iterable[IPNetwork], cloudflare: Iterable[IPNetwork] = ()) -> None:
        self._proxies = IpSet(networks)
        self._cloudflare = IpSet(cloudflare)

    def __bool__(self) -> bool:
        return bool(self._proxies) or bool(self._cloudflare)

    def vouches_for(self, peer: IPAddress) -> bool:
        """Whether `peer` is one of the trusted proxies."""
        return peer in self._proxies or peer in self._cloudflare

    def sends_proxy_header(self, peer: IPAddress) -> bool:
        """Whether `peer`'s PROXY protocol header counts: the listed networks, not Cloudflare's
        edge (its HTTP proxies never send one)."""
        return peer in self._proxies

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
