from ipaddress import ip_network

from core.ipsets import IpSet, PrefixMap, parse_address


def test_prefix_map_returns_every_containing_entry() -> None:
    prefixes = PrefixMap(
        [(ip_network("10.0.0.0/8"), "a"), (ip_network("10.1.0.0/16"), "b"),
         (ip_network("10.1.0.0/16"), "c"), (ip_network("2001:db8::/32"), "v6")]
    )  # fmt: skip
    assert sorted(prefixes.values_containing(parse_address("10.1.2.3"))) == ["a", "b", "c"]
    assert prefixes.values_containing(parse_address("10.2.0.1")) == ["a"]
    assert prefixes.values_containing(parse_address("11.0.0.1")) == []
    assert prefixes.values_containing(parse_address("2001:db8::1")) == ["v6"]


def test_ip_set_membership_including_the_whole_space() -> None:
    networks = IpSet([ip_network("192.0.2.0/24"), ip_network("::/0")])
    assert parse_address("192.0.2.255") in networks
    assert parse_address("192.0.3.0") not in networks
    assert parse_address("2001:db8::1") in networks
    assert not IpSet([])


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    assert str(parse_address("::ffff:192.0.2.1")) == "192.0.2.1"
