from ipaddress import ip_address
from pathlib import Path

import pytest

from geodb.database import open_database
from geodb.lookup import GeoFacts, Lookup, special_range
from tests.support.geoip import ASN, COUNTRY, build, geoip_file

PRIVATE_ROWS = "10.0.0.0/8,DE,64512\n100.64.0.0/10,FR\n81.2.69.0/24,SE\n"


def public() -> Lookup:
    return Lookup(
        [open_database(geoip_file(COUNTRY), "country")],
        [open_database(geoip_file(ASN), "asn")],
        cache_size=128,
    )


def test_facts_combine_the_kinds() -> None:
    lookup = public()
    assert lookup.facts(ip_address("89.160.20.112")) == GeoFacts("SE", 29518)
    assert lookup.facts(ip_address("81.2.69.142")) == GeoFacts("GB", None)
    assert lookup.facts(ip_address("1.128.0.1")) == GeoFacts(None, 1221)
    assert lookup.facts(ip_address("8.8.8.8")) == GeoFacts(None, None)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "192.168.1.1",
        "172.16.0.1",
        "127.0.0.1",
        "::1",
        "100.64.0.1",
        "fd00::1",
        "169.254.1.1",
    ],
)
def test_private_loopback_and_cgnat_addresses_are_unknown_to_public_databases(address: str) -> None:
    assert public().facts(ip_address(address)) == GeoFacts(None, None)
    assert special_range(ip_address(address)) is not None


def test_special_ranges_are_named() -> None:
    assert special_range(ip_address("10.0.0.1")) == "a private address (RFC 1918 / RFC 4193)"
    assert special_range(ip_address("100.64.0.1")) == "a carrier-grade NAT address (RFC 6598)"
    assert special_range(ip_address("::1")) == "a loopback address"
    assert (
        special_range(ip_address("192.0.2.1"))
        == "a special-purpose address (not globally routable)"
    )
    assert special_range(ip_address("81.2.69.142")) is None


def test_your_own_database_first_places_private_ranges_and_overrides(tmp_path: Path) -> None:
    own = build(tmp_path, PRIVATE_ROWS)
    lookup = Lookup(
        [open_database(own, "country"), open_database(geoip_file(COUNTRY), "country")],
        [open_database(own, "asn"), open_database(geoip_file(ASN), "asn")],
        cache_size=128,
    )
    assert lookup.facts(ip_address("10.9.9.9")) == GeoFacts("DE", 64512)
    assert lookup.facts(ip_address("100.64.3.4")) == GeoFacts("FR", None)
    assert lookup.facts(ip_address("81.2.69.142")) == GeoFacts("SE", None)  # first one wins
    assert lookup.facts(ip_address("89.160.20.112")) == GeoFacts("SE", 29518)  # falls through
    located = lookup.locate(ip_address("89.160.20.112"))
    assert located.country_from is not None
    assert located.country_from.path.name == COUNTRY
    assert located.asn_from is not None
    assert located.asn_organization == "Bredband2 AB"
    assert lookup.describe(lookup.locate(ip_address("8.8.8.8"))) == [
        f"country   unknown (in none of: custom.mmdb, {COUNTRY})",
        f"asn       unknown (in none of: custom.mmdb, {ASN})",
    ]


def test_answers_are_cached_per_address_in_a_bounded_lru() -> None:
    lookup = public()
    for _ in range(3):
        assert lookup.country(ip_address("81.2.69.142")) == "GB"
        assert lookup.country(ip_address("8.8.8.8")) is None  # unknown answers are cached too
    info = lookup.country.cache_info()  # type: ignore[attr-defined]
    assert (info.hits, info.misses, info.maxsize) == (4, 2, 128)
    small = Lookup(lookup.countries, (), cache_size=2)
    for text in ("81.2.69.142", "89.160.20.112", "216.160.83.56", "81.2.69.142"):
        small.country(ip_address(text))
    assert small.country.cache_info().currsize == 2  # type: ignore[attr-defined]
    assert small.country.cache_info().misses == 4  # type: ignore[attr-defined]


def test_no_cache_and_no_databases() -> None:
    uncached = Lookup([open_database(geoip_file(COUNTRY), "country")], [], cache_size=0)
    assert uncached.country(ip_address("81.2.69.142")) == "GB"
    assert not hasattr(uncached.country, "cache_info")
    assert uncached.asn(ip_address("1.128.0.1")) is None
    assert (
        uncached.describe(uncached.locate(ip_address("1.128.0.1")))[1]
        == "asn       - (no ASN database)"
    )
