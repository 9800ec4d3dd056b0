"""The PROXY protocol codec against the spec's own examples and its error cases, and a
round-trip property: whatever `encode` writes, `decode` reads back, in any split."""

import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ipsets import IPAddress
from core.proxyprotocol import (
    V2_SIGNATURE,
    Endpoint,
    ProxyHeader,
    ProxyHeaderError,
    Version,
    could_be_header,
    decode,
    encode,
)

ports = st.integers(min_value=0, max_value=65535)
v4 = st.builds(IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))
v6 = st.builds(IPv6Address, st.integers(min_value=0, max_value=2**128 - 1))
pairs = st.one_of(st.tuples(v4, v4), st.tuples(v6, v6))


@given(pairs, ports, ports, st.sampled_from(["v1", "v2"]), st.binary(max_size=64))
def test_what_is_encoded_decodes_to_the_same_endpoints(
    pair: tuple[IPAddress, IPAddress], sport: int, dport: int, version: Version, rest: bytes
) -> None:
    source, destination = Endpoint(pair[0], sport), Endpoint(pair[1], dport)
    header = encode(version, source, destination)
    assert decode(header + rest) == ProxyHeader(source, destination, len(header))


@given(pairs, ports, ports, st.sampled_from(["v1", "v2"]))
def test_every_prefix_of_a_header_asks_for_more(
    pair: tuple[IPAddress, IPAddress], sport: int, dport: int, version: Version
) -> None:
    header = encode(version, Endpoint(pair[0], sport), Endpoint(pair[1], dport))
    for cut in range(len(header)):
        assert could_be_header(header[:cut])
        assert decode(header[:cut]) is None


def test_v1_matches_the_spec_example() -> None:
    header = encode("v1", Endpoint(ip_address("192.168.0.1"), 56324),
                    Endpoint(ip_address("192.168.0.11"), 443))  # fmt: skip
    assert header == b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"


def test_v2_matches_haproxys_bytes() -> None:
    header = encode("v2", Endpoint(ip_address("172.19.0.1"), 42578),
                    Endpoint(ip_address("172.19.0.3"), 80))  # fmt: skip
    assert header.hex() == "0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050"


def test_a_v4_client_on_a_v6_listener_is_sent_mapped() -> None:
    header = decode(encode("v2", Endpoint(ip_address("10.0.0.1"), 1),
                           Endpoint(ip_address("::1"), 2)))  # fmt: skip
    assert header is not None
    assert header.source == Endpoint(ip_address("::ffff:10.0.0.1"), 1)


def test_local_and_unknown_keep_the_real_endpoints() -> None:
    local = V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    assert decode(local) == ProxyHeader(None, None, 16)
    assert decode(b"PROXY UNKNOWN whatever\r\nGET") == ProxyHeader(None, None, 24)


def test_v2_tlvs_after_the_addresses_are_skipped() -> None:
    block = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!HH", 5, 6)
    tlv = bytes([0x01]) + struct.pack("!H", 2) + b"h2"  # PP2_TYPE_ALPN
    data = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(block + tlv)) + block + tlv
    header = decode(data + b"after")
    assert header is not None
    assert header.length == len(data)
    assert header.source == Endpoint(ip_address("10.0.0.1"), 5)


def _v2(version_command: int, family: int, block: bytes) -> bytes:
    return V2_SIGNATURE + bytes([version_command, family]) + struct.pack("!H", len(block)) + block


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # no header at all
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"\r\n\r\n\x00\r\nQUIT\x0b" + bytes(8),  # wrong signature
        b"PROXY TCP4 " + b"1" * 100,  # v1 past 107 bytes without its CRLF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # a field missing
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",  # an unknown protocol
        b"PROXY TCP4 ::1 ::1 1 2\r\n",  # addresses of the wrong family
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  # a leading zero
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  # a port out of range
        b"PROXY TCP4 1.2.3.x 5.6.7.8 1 2\r\n",  # not an address
        _v2(0x11, 0x11, bytes(12)),  # version 1 in a v2 header
        _v2(0x22, 0x11, bytes(12)),  # an unassigned command
        _v2(0x21, 0x41, bytes(12)),  # an unknown family
        _v2(0x21, 0x13, bytes(12)),  # an unknown transport
        _v2(0x21, 0x11, bytes(8)),  # an address block too short for IPv4
        _v2(0x21, 0x31, bytes(216)),  # a unix socket: no address to believe
        _v2(0x21, 0x12, bytes(12)),  # datagrams on a TCP connection
    ],
)
def test_malformed_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        decode(data)


def test_a_truncated_v2_header_waits_for_its_declared_length() -> None:
    assert decode(_v2(0x21, 0x11, bytes(12))[:20]) is None
