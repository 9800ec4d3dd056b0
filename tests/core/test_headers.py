import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.headers import (
    HeaderNames,
    cgi_name,
    cgi_names,
    connection_problem,
    field_problem,
    head_size,
    is_token,
    is_websocket_upgrade,
    lowered_names,
    nominated,
    positions,
    valid_pattern,
)


@pytest.mark.parametrize(
    "value",
    [b"a\rRemote-User: admin", b"a\nb", b"a\x00b", b"a\r\n b", b"\x1b[31m", b"a\x7f"],
)
def test_values_with_control_characters_are_refused(value: bytes) -> None:
    assert field_problem([(b"X-A", value)]) is not None


@pytest.mark.parametrize("value", [b"plain", b"tab\tinside", b"caf\xc3\xa9", b""])
def test_ordinary_values_pass(value: bytes) -> None:
    assert field_problem([(b"X-A", value)]) is None


def test_every_byte_is_judged_as_rfc_9110_says() -> None:
    # field-content (RFC 9110 §5.5): VCHAR, obs-text, SP and HTAB pass; every other control fails.
    for byte in range(256):
        allowed = byte in (0x09, 0x20) or 0x21 <= byte <= 0x7E or byte >= 0x80
        found = field_problem([(b"X-A", b"long value " * 40 + bytes([byte]) + b" tail")])
        assert (found is None) is allowed, hex(byte)


@pytest.mark.parametrize("name", [b"Remote-User ", b"X A", b"X:A", b"", b"X\rA"])
def test_names_that_are_not_tokens_are_refused(name: bytes) -> None:
    assert field_problem([(name, b"v")]) is not None


@pytest.mark.parametrize("name", [b"Transfer_Encoding", b"content_length", b"CONTENT_LENGTH"])
def test_framing_names_spelt_with_underscores_are_refused(name: bytes) -> None:
    assert field_problem([(name, b"chunked")]) is not None


def test_cgi_names_equal_underscore_and_dash() -> None:
    assert cgi_name(b"Remote_User") == cgi_name(b"REMOTE-user") == b"remote-user"


def test_connection_nominations_are_read_as_cgi_names() -> None:
    fields = [(b"Connection", b"keep-alive, X_Real_IP"), (b"connection", b" Remote-User ,")]
    assert nominated(fields) == {b"keep-alive", b"x-real-ip", b"remote-user"}


def test_only_a_field_named_connection_nominates_in_any_case() -> None:
    assert nominated([(b"Proxy-Connection", b"X-A"), (b"X-Connection", b"X-B")]) == frozenset()
    assert nominated([(b"Host", b"app.example"), (b"CONNECTION", b"X-A")]) == {b"x-a"}
    assert nominated([]) == frozenset()


@pytest.mark.parametrize("name", [b"Content-Length", b"transfer-encoding", b"Host", b"HOST"])
def test_nominating_framing_or_host_is_refused(name: bytes) -> None:
    assert connection_problem([(b"Connection", b"close, " + name)]) is not None


def test_nominating_other_headers_is_fine() -> None:
    assert connection_problem([(b"Connection", b"keep-alive, X-Forwarded-For")]) is None


WEBSOCKET = [
    (b"Upgrade", b"websocket"),
    (b"Connection", b"keep-alive, Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
]


def test_a_websocket_handshake_is_recognised() -> None:
    assert is_websocket_upgrade("GET", WEBSOCKET)
    shouted = [(name.upper(), value) for name, value in WEBSOCKET]
    assert is_websocket_upgrade("GET", [(b"Host", b"app.example"), *shouted])


@pytest.mark.parametrize("upgrade", [b"h2c", b"H2C", b"foo, h2c", b"websocket, h2c", b"WebSocket2"])
def test_any_other_upgrade_is_not(upgrade: bytes) -> None:
    fields = [(b"Upgrade", upgrade), *WEBSOCKET[1:]]
    assert not is_websocket_upgrade("GET", fields)


def test_websocket_needs_get_connection_upgrade_a_key_and_version_13() -> None:
    assert not is_websocket_upgrade("POST", WEBSOCKET)
    assert not is_websocket_upgrade("GET", [f for f in WEBSOCKET if f[0] != b"Connection"])
    assert not is_websocket_upgrade("GET", [*WEBSOCKET[:2], (b"Sec-WebSocket-Version", b"13")])
    assert not is_websocket_upgrade("GET", [*WEBSOCKET[:3], (b"Sec-WebSocket-Version", b"8")])


def test_header_names_match_exact_names_and_prefixes_as_cgi_names() -> None:
    names = HeaderNames(["X-Webauth-User", "X-Authentik-*"])
    assert cgi_name(b"X_WEBAUTH_USER") in names
    assert cgi_name(b"x-authentik-username") in names
    assert cgi_name(b"X_Authentik_Groups") in names
    assert cgi_name(b"X-Webauth-Other") not in names
    assert cgi_name(b"X-Authentik") not in names


# Names as a client could send them over HTTP/2 too: any case, `_`, and bytes no HTTP/1 head holds.
NAMES = st.lists(st.sampled_from(b"aA_-\nxX:\r"), max_size=6).map(bytes)
FIELDS = st.lists(st.tuples(NAMES, st.just(b"v")), max_size=6)


@given(FIELDS)
def test_all_cgi_names_at_once_are_each_name_s(fields: list[tuple[bytes, bytes]]) -> None:
    assert cgi_names(fields) == [cgi_name(name) for name, _value in fields]
    assert lowered_names(fields) == [name.lower() for name, _value in fields]


@given(FIELDS, st.frozensets(NAMES.map(cgi_name), max_size=3))
def test_the_fields_kept_are_those_no_name_matches(
    fields: list[tuple[bytes, bytes]], also: frozenset[bytes]
) -> None:
    names = HeaderNames(["X-A", "a-*"]) | HeaderNames.of({b"x"}, (b"x-",))
    expected = [f for f in fields if cgi_name(f[0]) not in names and cgi_name(f[0]) not in also]
    assert names.kept(fields, also) == expected


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [("X-A", True), ("X-A-*", True), ("*", False), ("X*A", False), ("X A", False), ("X-**", False)],
)
def test_strip_patterns(pattern: str, valid: bool) -> None:
    assert valid_pattern(pattern) is valid


ANY_NAMES = st.lists(st.sampled_from(b"aA_-\nx:\r\x00 "), max_size=5).map(bytes)
ANY_VALUES = st.lists(st.sampled_from(b"v \t\r\n\x00\x7f\x80"), max_size=4).map(bytes)
ANY_FIELDS = st.lists(
    st.tuples(st.one_of(ANY_NAMES, st.sampled_from([b"Transfer_Encoding", b"Host"])), ANY_VALUES),
    max_size=5,
)


def _fine(name: bytes, value: bytes) -> bool:
    framing = cgi_name(name) in (b"content-length", b"transfer-encoding") and b"_" in name
    controls = any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value)
    return is_token(name) and not framing and not controls


@given(ANY_FIELDS)
@example([(b"Host", b"v"), (b"X-A\nHost", b"v")])  # a name that would read as two
def test_fields_are_refused_exactly_when_one_of_them_is_malformed(
    fields: list[tuple[bytes, bytes]],
) -> None:
    assert (field_problem(fields) is None) == all(_fine(name, value) for name, value in fields)


@given(ANY_FIELDS)
def test_the_head_size_counts_each_field_with_its_separator_and_crlf(
    fields: list[tuple[bytes, bytes]],
) -> None:
    assert head_size(fields) == sum(len(b"%s: %s\r\n" % field) for field in fields)


@given(ANY_FIELDS)
def test_positions_are_where_the_name_is_in_any_case(fields: list[tuple[bytes, bytes]]) -> None:
    for name in (b"host", b"a", b"transfer_encoding"):
        assert positions(fields, name) == [i for i, f in enumerate(fields) if f[0].lower() == name]
