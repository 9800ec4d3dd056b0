from ipaddress import ip_network

import pytest

from core.clientip import ForwardingError, ProxyTrust
from core.cloudflare import KNOWN
from core.ipsets import parse_address

PROXY = parse_address("127.0.0.1")
STRANGER = parse_address("198.51.100.9")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    trust = ProxyTrust([])
    assert not trust
    client = trust.resolve(STRANGER, "1.2.3.4", "5.6.7.8")
    assert client.ip == STRANGER
    assert client.via == "peer"


def test_forwarded_for_counts_only_from_a_trusted_peer() -> None:
    trust = ProxyTrust([ip_network("127.0.0.0/8")])
    assert trust.resolve(PROXY, "203.0.113.5", None).ip == parse_address("203.0.113.5")
    assert trust.resolve(STRANGER, "203.0.113.5", None).ip == STRANGER


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    trust = ProxyTrust([ip_network("127.0.0.0/8"), ip_network("10.0.0.0/8")])
    # The client forged "6.6.6.6"; our own proxy chain appended the real address and 10.0.0.2.
    client = trust.resolve(PROXY, "6.6.6.6, 203.0.113.5, 10.0.0.2", None)
    assert client.ip == parse_address("203.0.113.5")
    assert client.via == "x-forwarded-for"


def test_cloudflare_connecting_ip_only_from_cloudflare_edges() -> None:
    trust = ProxyTrust([], KNOWN)
    edge = parse_address("172.64.1.1")
    assert trust.resolve(edge, None, "203.0.113.5").ip == parse_address("203.0.113.5")
    assert trust.resolve(edge, None, "203.0.113.5").via == "cf-connecting-ip"
    assert trust.resolve(STRANGER, None, "203.0.113.5").ip == STRANGER


def test_a_trusted_peer_without_a_header_is_itself_the_client() -> None:
    trust = ProxyTrust([ip_network("127.0.0.0/8")])
    assert trust.resolve(PROXY, "", None).ip == PROXY


@pytest.mark.parametrize("header", ["not-an-ip", "1.2.3.4, ", "300.1.1.1", "1.2.3.4 5.6.7.8"])
def test_an_unreadable_header_from_a_trusted_peer_is_refused(header: str) -> None:
    trust = ProxyTrust([ip_network("127.0.0.0/8")])
    with pytest.raises(ForwardingError):
        trust.resolve(PROXY, header, None)


def test_ports_and_brackets_are_tolerated() -> None:
    trust = ProxyTrust([ip_network("127.0.0.0/8")])
    assert trust.resolve(PROXY, "203.0.113.5:4711", None).ip == parse_address("203.0.113.5")
    assert trust.resolve(PROXY, "[2001:db8::7]:4711", None).ip == parse_address("2001:db8::7")
