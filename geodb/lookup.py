"""Address -> country and AS number, through each kind's databases in order, behind an LRU cache.

A `Lookup` never changes: a reload builds a new one (with an empty cache) and swaps it in, so a
cached answer never outlives the database that gave it.
"""

from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from ipaddress import ip_network
from typing import NamedTuple

from core.ipsets import IPAddress, IpSet
from core.regions import NAMES, regions_of
from geodb.database import Database


class GeoFacts(NamedTuple):
    """What the rules see; None is unknown (see docs/configuration.md for what rules do then)."""

    country: str | None
    asn: int | None


class Located(NamedTuple):
    """The same answer for people: which database said what."""

    country: str | None
    country_from: Database | None
    asn: int | None
    asn_organization: str | None
    asn_from: Database | None


def _nothing(ip: IPAddress) -> None:
    return None


class Lookup:
    __slots__ = ("asn", "asns", "countries", "country")

    def __init__(
        self, countries: Sequence[Database], asns: Sequence[Database], cache_size: int
    ) -> None:
        self.countries = tuple(countries)
        self.asns = tuple(asns)
        # Partials over the tuples, not bound methods: no cycle through self, so an old Lookup
        # (and the database copies it holds) is freed as soon as the last request drops it.
        self.country: Callable[[IPAddress], str | None] = _cached(
            partial(_first_country, self.countries), cache_size, self.countries
        )
        self.asn: Callable[[IPAddress], int | None] = _cached(
            partial(_first_asn, self.asns), cache_size, self.asns
        )

    def facts(self, ip: IPAddress) -> GeoFacts:
        return GeoFacts(self.country(ip), self.asn(ip))

    def locate(self, ip: IPAddress) -> Located:
        country, country_from = None, None
        for database in self.countries:
            country = database.country(ip)
            if country is not None:
                country_from = database
                break
        for database in self.asns:
            found = database.asn(ip)
            if found is not None:
                return Located(country, country_from, found[0], found[1], database)
        return Located(country, country_from, None, None, None)

    def describe(self, located: Located) -> list[str]:
        """`country ...` and `asn ...` lines for people: each answer and its database."""

        def unknown(databases: tuple[Database, ...], kind: str) -> str:
            if not databases:
                return f"- (no {kind} database)"
            return f"unknown (in none of: {', '.join(d.path.name for d in databases)})"

        country = unknown(self.countries, "country")
        if located.country_from is not None:
            country = f"{located.country} from {located.country_from.description}"
        asn = unknown(self.asns, "ASN")
        if located.asn_from is not None:
            organization = f" {located.asn_organization}" if located.asn_organization else ""
            asn = f"AS{located.asn}{organization} from {located.asn_from.description}"
        lines = [f"country   {country}"]
        if located.country is not None and (held := regions_of(located.country)):
            lines.append("region    " + ", ".join(f"{code} {NAMES[code]}" for code in held))
        return [*lines, f"asn       {asn}"]


def _first_country(databases: tuple[Database, ...], ip: IPAddress) -> str | None:
    for database in databases:
        country = database.country(ip)
        if country is not None:
            return country
    return None


def _first_asn(databases: tuple[Database, ...], ip: IPAddress) -> int | None:
    for database in databases:
        found = database.asn(ip)
        if found is not None:
            return found[0]
    return None


def _cached[T](
    function: Callable[[IPAddress], T | None], size: int, databases: Sequence[Database]
) -> Callable[[IPAddress], T | None]:
    if not databases:
        return _nothing
    if size == 0:
        return function
    return lru_cache(maxsize=size)(function)


_SPECIAL = (
    ("a loopback address", IpSet([ip_network("127.0.0.0/8"), ip_network("::1/128")])),
    (
        "a private address (RFC 1918 / RFC 4193)",
        IpSet(map(ip_network, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))),
    ),
    ("a carrier-grade NAT address (RFC 6598)", IpSet([ip_network("100.64.0.0/10")])),
    ("a link-local address", IpSet([ip_network("169.254.0.0/16"), ip_network("fe80::/10")])),
)


def special_range(ip: IPAddress) -> str | None:
    """Which kind of address no public database places, if `ip` is one. Informative only:
    lookups treat these like any address, so a database of your own may map them."""
    for name, networks in _SPECIAL:
        if ip in networks:
            return name
    if not ip.is_global:
        return "a special-purpose address (not globally routable)"
    return None
