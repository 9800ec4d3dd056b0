"""IndexedHeaders answers every lookup as mitmproxy's Headers does, also after any change."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from addons.headerindex import IndexedHeaders

# A line feed in a name cannot arrive in an HTTP/1 head, but the index must not be misled by it.
NAMES = st.sampled_from(
    [b"Host", b"host", b"HOST", b"Cookie", b"X-A", b"x-a", b"Content-Length", b"X-A\nHost"]
)
VALUES = st.binary(max_size=8)
FIELDS = st.lists(st.tuples(NAMES, VALUES), max_size=8)
LOOKUPS = ("host", b"HOST", "cookie", "x-a", b"X-A", "content-length", "absent")

# A change as mitmproxy makes one: set (Host when the destination changes), add, delete, or
# fields replaced wholesale.
CHANGES = st.one_of(
    st.tuples(st.just("set_all"), NAMES, st.lists(VALUES, max_size=3)),
    st.tuples(st.just("add"), NAMES, VALUES),
    st.tuples(st.just("delete"), NAMES, st.none()),
    st.tuples(st.just("fields"), st.none(), FIELDS),
)


def _answers(headers: http.Headers) -> list[object]:
    answers: list[object] = [headers.fields]
    for name in LOOKUPS:
        answers += [headers.get(name), headers.get_all(name), name in headers]
        try:
            answers.append(headers[name])
        except KeyError:
            answers.append(KeyError)
    return answers


type Change = tuple[str, Any, Any]


def _change(headers: http.Headers, change: Change) -> None:
    kind, name, value = change
    if kind == "set_all":
        headers.set_all(name, value)
    elif kind == "add":
        headers.add(name, value)
    elif kind == "delete":
        if name in headers:
            del headers[name]
    else:
        headers.fields = tuple(value)


@given(FIELDS, st.lists(CHANGES, max_size=6), st.booleans())
def test_the_same_answers_as_mitmproxy_after_any_changes(
    fields: list[tuple[bytes, bytes]], changes: list[Change], taken_as_they_are: bool
) -> None:
    plain = http.Headers(fields)
    indexed = IndexedHeaders.of(tuple(fields)) if taken_as_they_are else IndexedHeaders(fields)
    assert _answers(indexed) == _answers(plain)
    for change in changes:
        _change(plain, change)
        _change(indexed, change)
        assert _answers(indexed) == _answers(plain)
    assert bytes(indexed) == bytes(plain)
    assert indexed.copy().fields == plain.fields


def test_a_request_keeps_the_index_through_a_new_destination() -> None:
    request = http.Request.make("GET", "http://app.example/x", headers=((b"Host", b"app.example"),))
    request.headers = IndexedHeaders((*request.headers.fields, (b"Remote-User", b"alice")))
    assert request.headers["remote-user"] == "alice"
    request.host, request.port = "127.0.0.1", 8080
    request.host_header = "app.example"
    assert request.headers.get_all("host") == ["app.example"]
    assert request.headers["Remote-User"] == "alice"
    assert "cookie" not in request.headers
