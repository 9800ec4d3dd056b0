"""The TCP/443 fallback's framing: datagrams in, the same datagrams out, however cut."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.framing import HEADER, MAX_DATAGRAM, Decoder, FramingError, encode, encode_all

datagrams = st.lists(st.binary(max_size=MAX_DATAGRAM), max_size=20)


@given(datagrams, st.lists(st.integers(min_value=1, max_value=3000), max_size=30))
def test_any_datagrams_cut_anywhere_come_out_whole_and_in_order(
    sent: list[bytes], cuts: list[int]
) -> None:
    stream = encode_all(sent)
    decoder = Decoder()
    received: list[bytes] = []
    position = 0
    for size in [*cuts, len(stream)]:
        received += decoder.feed(stream[position : position + size])
        position += size
    assert received == sent
    assert decoder.pending == 0


def test_a_truncated_frame_waits_for_its_rest() -> None:
    decoder = Decoder()
    frame = encode(b"wireguard packet")
    assert decoder.feed(frame[:1]) == []  # half a length
    assert decoder.feed(frame[1:5]) == []  # the length and part of the datagram
    assert decoder.pending == 5
    assert decoder.feed(frame[5:] + frame[:3]) == [b"wireguard packet"]
    assert decoder.pending == 3


def test_an_empty_datagram_is_a_frame() -> None:
    assert Decoder().feed(encode(b"") + encode(b"x")) == [b"", b"x"]


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    decoder = Decoder()
    with pytest.raises(FramingError, match="at most"):
        decoder.feed(HEADER.pack(MAX_DATAGRAM + 1))
    with pytest.raises(FramingError):
        Decoder().feed(encode(b"ok") + b"\xff\xff" + b"x" * 100)


def test_an_oversized_datagram_is_not_sent() -> None:
    assert len(encode(b"x" * MAX_DATAGRAM)) == MAX_DATAGRAM + HEADER.size
    with pytest.raises(FramingError):
        encode(b"x" * (MAX_DATAGRAM + 1))
