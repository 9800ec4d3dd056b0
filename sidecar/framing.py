"""WireGuard datagrams in a byte stream, for the TCP/443 fallback (sidecar.streamlink).

Each datagram goes as a 2-byte big-endian length, then the datagram. WireGuard stays the only
encryption: the stream carries its packets as they are, and TLS (the gateway's HTTPS) around
the stream only hides the framing. A stream is a stream whatever carries it (WebSocket messages
here), so a frame may arrive cut across reads: the decoder keeps the rest until it is whole.
"""

import struct

HEADER = struct.Struct("!H")
# The largest WireGuard packet on an interface of MTU 1420 (sidecar.links.MTU) is 1420 + 32
# bytes (a data packet's header and tag); a datagram this much larger is not WireGuard's, and a
# length over it means the stream is corrupt or hostile: the decoder refuses it rather than
# buffering towards 64 KiB per frame.
MAX_DATAGRAM = 2048


class FramingError(ValueError):
    pass


def encode(datagram: bytes) -> bytes:
    if len(datagram) > MAX_DATAGRAM:
        raise FramingError(f"a datagram of {len(datagram)} bytes (at most {MAX_DATAGRAM})")
    return HEADER.pack(len(datagram)) + datagram


def encode_all(datagrams: list[bytes]) -> bytes:
    return b"".join(encode(datagram) for datagram in datagrams)


class Decoder:
    """Bytes in, whole datagrams out. After a FramingError the stream is beyond repair: the
    caller closes it (nothing after a bad length can be trusted to start a frame)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a frame not yet whole."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        found: list[bytes] = []
        start = 0
        while len(self._buffer) - start >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer, start)
            if length > MAX_DATAGRAM:
                raise FramingError(f"a frame of {length} bytes (at most {MAX_DATAGRAM})")
            end = start + HEADER.size + length
            if end > len(self._buffer):
                break
            found.append(bytes(self._buffer[start + HEADER.size : end]))
            start = end
        del self._buffer[:start]
        return found
