"""Sets of networks that answer "which entries contain this address" in a bounded number of steps.

Networks are grouped by prefix length; a lookup masks the address once per length that occurs
and probes a dict. The cost depends on how many distinct lengths a set holds (at most 33 for
IPv4, 129 for IPv6), never on how many networks it holds.
"""

from collections import defaultdict
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

type IPAddress = IPv4Address | IPv6Address
type IPNetwork = IPv4Network | IPv6Network

_EMPTY: tuple[()] = ()


class PrefixMap[V]:
    __slots__ = ("_tables",)

    def __init__(self, entries: Iterable[tuple[IPNetwork, V]]) -> None:
        grouped: dict[tuple[int, int], defaultdict[int, list[V]]] = {}
        for network, value in entries:
            bits = network.max_prefixlen
            shift = bits - network.prefixlen
            table = grouped.setdefault((network.version, shift), defaultdict(list))
            table[int(network.network_address) >> shift].append(value)
        # Longest prefixes first, so callers wanting the most specific entry can stop early.
        self._tables: dict[int, tuple[tuple[int, dict[int, tuple[V, ...]]], ...]] = {
            version: tuple(
                (shift, {key: tuple(values) for key, values in table.items()})
                for (table_version, shift), table in sorted(
                    grouped.items(), key=lambda kv: kv[0][1]
                )
                if table_version == version
            )
            for version in (4, 6)
        }

    def values_containing(self, address: IPAddress) -> list[V]:
        found: list[V] = []
        number = int(address)
        for shift, table in self._tables[address.version]:
            values = table.get(number >> shift, _EMPTY)
            if values:
                found.extend(values)
        return found

    def __bool__(self) -> bool:
        return any(self._tables.values())


_SMALL = 4


class IpSet:
    """Membership only. A handful of networks (the usual rule) are compared one by one, which
    is cheaper to build and to probe than a prefix map."""

    __slots__ = ("_map", "_small")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        listed = list(networks)
        self._small: tuple[tuple[int, int, int], ...] | None = None
        self._map: PrefixMap[None] | None = None
        if len(listed) <= _SMALL:
            self._small = tuple(
                (
                    n.version,
                    n.max_prefixlen - n.prefixlen,
                    int(n.network_address) >> (n.max_prefixlen - n.prefixlen),
                )
                for n in listed
            )
        else:
            self._map = PrefixMap((network, None) for network in listed)

    def __contains__(self, address: IPAddress) -> bool:
        number = int(address)
        version = address.version
        if self._small is not None:
            for net_version, shift, key in self._small:
                if net_version == version and number >> shift == key:
                    return True
            return False
        assert self._map is not None
        for shift, table in self._map._tables[version]:
            if (number >> shift) in table:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self._small) or bool(self._map)


def parse_address(text: str) -> IPAddress:
    """An address as rules see it: IPv4-mapped IPv6 (from dual-stack sockets) becomes IPv4."""
    address = ip_address(text.strip())
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
