"""The PROXY protocol, versions 1 and 2: the header an L4 proxy writes first on a connection to
say whom it carries (HAProxy's "The PROXY protocol, versions 1 & 2", doc/proxy-protocol.txt).

Warren's own encoder/decoder rather than a PyPI package: the spec is short, the one package
that fits (`proxy-protocol`) was last released in 2024, is untyped and brings its own server;
this is bytes in, bytes out, no I/O, so any layer or socket can use it.

`decode` is strict (it guards who a client is): anything the spec does not define is an error,
never a guess, and an incomplete header is `None` (read more) until it can no longer be one.
"""

import ipaddress
import struct
from typing import Literal, NamedTuple

from core.ipsets import IPAddress

type Version = Literal["v1", "v2"]

# §2.2: the 12-byte signature that starts every v2 header (it cannot start any v1 header or an
# HTTP, TLS or SSH stream: "\r\n\r\n\0\r\nQUIT\n").
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
# §2.1: "a 108-byte buffer is always enough to store all the line and a trailing zero":
# the whole v1 line, CRLF included, is at most 107 bytes.
V1_MAX = 107
_V2_FIXED = 16  # §2.2: signature, version/command, family/transport, 16-bit length
# §2.2: the 4th byte's high nibble is the family (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX), the low
# nibble the transport (0 UNSPEC, 1 STREAM, 2 DGRAM); the address block's size per family.
_V2_ADDRESS_SIZE = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}


class ProxyHeaderError(ValueError):
    """Not a PROXY protocol header Warren can believe: the connection is refused."""


class Endpoint(NamedTuple):
    ip: IPAddress
    port: int


class ProxyHeader(NamedTuple):
    """What a header said. `source` is None for v2's LOCAL command and v1's UNKNOWN, which the
    spec (§2.1, §2.2) says mean "use the real connection's endpoints" (health checks)."""

    source: Endpoint | None
    destination: Endpoint | None
    length: int  # how many bytes of the stream the header took


def encode(version: Version, source: Endpoint, destination: Endpoint) -> bytes:
    """The header for a TCP connection from `source` to `destination` (both the same family:
    an IPv4 client reaching an IPv6 listener is sent as IPv4-mapped, as §2.1 recommends)."""
    src, dst = _same_family(source.ip, destination.ip)
    if version == "v1":
        proto = "TCP4" if src.version == 4 else "TCP6"
        line = f"PROXY {proto} {src} {dst} {source.port} {destination.port}\r\n"
        return line.encode("ascii")
    family = 0x11 if src.version == 4 else 0x21  # §2.2: AF_INET/AF_INET6 over STREAM
    block = src.packed + dst.packed + struct.pack("!HH", source.port, destination.port)
    # §2.2: 0x21 = version 2 (high nibble), command PROXY (low nibble 0x1).
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(block)) + block


def _same_family(a: IPAddress, b: IPAddress) -> tuple[IPAddress, IPAddress]:
    if a.version == b.version:
        return a, b
    return _as_v6(a), _as_v6(b)


def _as_v6(ip: IPAddress) -> ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        return ip
    return ipaddress.IPv6Address(f"::ffff:{ip}")


def could_be_header(data: bytes) -> bool:
    """Whether `data` (the first bytes of a stream) is, or may still become, a PROXY header."""
    return any(data[: len(prefix)] == prefix[: len(data)] for prefix in (V1_PREFIX, V2_SIGNATURE))


def decode(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`, None while more bytes are needed."""
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)]:
        return _decode_v2(data) if len(data) >= _V2_FIXED else None
    if data[: len(V1_PREFIX)] == V1_PREFIX[: len(data)]:
        return _decode_v1(data)
    raise ProxyHeaderError("the connection does not start with a PROXY protocol header")


def _decode_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:  # §2.1: 107 bytes at most; longer is not a header
            raise ProxyHeaderError("PROXY v1 header longer than 107 bytes")
        return None
    fields = data[:end].decode("ascii", "replace").split(" ")
    # §2.1: "PROXY UNKNOWN" may carry anything up to the CRLF; the receiver uses the real
    # connection's endpoints.
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(None, None, end + 2)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("PROXY v1 header is not 'PROXY TCP4|TCP6 src dst sport dport'")
    version = 4 if fields[1] == "TCP4" else 6
    source = _v1_endpoint(fields[2], fields[4], version)
    destination = _v1_endpoint(fields[3], fields[5], version)
    return ProxyHeader(source, destination, end + 2)


def _v1_endpoint(address: str, port: str, version: int) -> Endpoint:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 address {address[:45]!r} is not an IP") from None
    # §2.1: ports are decimal 0..65535 without leading zeros (a "0" alone is allowed).
    if not port.isdigit() or (port != "0" and port[0] == "0") or int(port) > 65535:
        raise ProxyHeaderError(f"PROXY v1 port {port[:8]!r} is not 0..65535")
    if ip.version != version:
        raise ProxyHeaderError(f"PROXY v1 address {address} is not IPv{version}")
    return Endpoint(ip, int(port))


def _decode_v2(data: bytes) -> ProxyHeader | None:
    version_command, family_transport, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 0x2:  # §2.2: the high nibble "must always be 0x2"
        raise ProxyHeaderError(f"PROXY v2 header with version {version_command >> 4}")
    command = version_command & 0x0F
    if command not in (0x0, 0x1):  # §2.2: LOCAL or PROXY; "other values are unassigned"
        raise ProxyHeaderError(f"PROXY v2 header with unknown command {command}")
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family not in _V2_ADDRESS_SIZE or transport > 0x2:
        raise ProxyHeaderError(f"PROXY v2 header with unknown family {family_transport:#04x}")
    if len(data) < _V2_FIXED + length:
        return None
    total = _V2_FIXED + length
    # §2.2: with LOCAL the receiver "must ignore" the address block and keep the real
    # endpoints; the TLVs after any address block are skipped by the length, unread.
    if command == 0x0 or family == 0x0:
        return ProxyHeader(None, None, total)
    if family == 0x3 or transport != 0x1:
        raise ProxyHeaderError("PROXY v2 header for a unix socket or datagrams, not TCP")
    if length < _V2_ADDRESS_SIZE[family]:
        raise ProxyHeaderError("PROXY v2 address block shorter than its family needs")
    return _v2_addresses(data[_V2_FIXED:total], family, total)


def _v2_addresses(block: bytes, family: int, total: int) -> ProxyHeader:
    size = 4 if family == 0x1 else 16
    src = ipaddress.ip_address(block[:size])
    dst = ipaddress.ip_address(block[size : 2 * size])
    sport, dport = struct.unpack_from("!HH", block, 2 * size)
    return ProxyHeader(Endpoint(src, sport), Endpoint(dst, dport), total)
