"""The regression corpus: attacks a real gateway refuses today, kept refused.

Every case goes to one real `warren gateway` process: HTTP/1.1 as raw bytes on a plain socket,
HTTP/2 as raw frames over TLS (tests.support.rawclient), in front of a RawBackend that records
every byte it receives. `app.example` is public with `/admin/*` denied; `private.example` needs
sign-in. `{m}` in a case is replaced by a marker new to each run. A case passes when the gateway
refuses it and the marker never reaches the backend, checked after a control request on a fresh
connection has reached it (an absent marker is not the absence of a working backend).

Adding a case is one line in the list it belongs to. A case that is not refused but is harmless
(read one way and forwarded re-framed) goes in REFRAMED_HTTP1, which checks what the backend got.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo import processes
from tests.support.gateway import Gateway
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import H2Answer, send_h2, send_raw, statuses
from tests.support.tls import self_signed

H = b"Host: app.example\r\n"
CLOSE = b"Connection: close\r\n"
# The request a smuggling case hides after its body: denied by the rules, were it ever read.
SMUGGLED = b"GET /admin/{m} HTTP/1.1\r\n" + H + CLOSE + b"\r\n"
SMUGGLED_SIZE = len(SMUGGLED.replace(b"{m}", b"m" * 12))
# How long an answer may pause before it counts as complete: the gateway may keep a connection
# open after its last answer, and the corpus does not wait for its idle timeout.
IDLE = 0.5


def post(*fields: bytes, version: bytes = b"1.1") -> bytes:
    """A POST for the public resource with these header lines, up to the end of its head."""
    return (
        b"POST /{m} HTTP/" + version + b"\r\n" + H + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    )


def get(target: bytes, host: bytes = b"app.example") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + CLOSE + b"\r\n"


def smuggle(*fields: bytes, body: bytes = b"0\r\n\r\n", version: bytes = b"1.1") -> bytes:
    """A POST whose framing is in doubt, then the smuggled request after what it says is its body."""
    return post(*fields, version=version) + body + SMUGGLED


CHUNK_HOLDING_SMUGGLED = b"%x\r\n" % SMUGGLED_SIZE + SMUGGLED + b"\r\n0\r\n\r\n"
TE = b"Transfer-Encoding: chunked"
CL5 = b"Content-Length: 5"  # the length of b"0\r\n\r\n"

# fmt: off
# Refused with a 4xx answer, nothing of the marker forwarded.
REFUSED_HTTP1: list[tuple[str, bytes]] = [
    # A framing header spelt the CGI way frames the body for a server that maps "_" to "-".
    ("te_underscore_with_cl", smuggle(b"Transfer_Encoding: chunked", b"Content-Length: %d" % (5 + SMUGGLED_SIZE))),
    ("cl_underscore", b"GET /{m} HTTP/1.1\r\n" + H + b"Content_Length: 60\r\n" + CLOSE + b"\r\n"),
    # Content-Length the two ends could read differently (CL.CL)
    ("cl_duplicate_differing", smuggle(b"Content-Length: 0", b"Content-Length: %d" % SMUGGLED_SIZE, body=b"")),
    ("cl_duplicate_equal", post(b"Content-Length: 4", b"Content-Length: 4") + b"abcd"),
    ("cl_list", smuggle(b"Content-Length: 0, %d" % SMUGGLED_SIZE, body=b"")),
    ("cl_plus_sign", smuggle(b"Content-Length: +0", body=b"")),
    ("cl_negative", smuggle(b"Content-Length: -1", body=b"")),
    ("cl_hex", smuggle(b"Content-Length: 0x0", body=b"")),
    # Content-Length and Transfer-Encoding together (CL.TE, TE.CL)
    ("cl_te", smuggle(CL5, TE)),
    ("te_cl", smuggle(TE, b"Content-Length: 3", body=CHUNK_HOLDING_SMUGGLED)),
    ("te_tab_cl", smuggle(b"Transfer-Encoding:\tchunked", CL5)),
    ("te_xchunked_cl", smuggle(CL5, b"Transfer-Encoding: xchunked")),
    ("te_space_before_colon_cl", smuggle(CL5, b"Transfer-Encoding : chunked")),
    ("te_http10_cl", smuggle(b"Connection: keep-alive", CL5, TE, version=b"1.0")),
    # Transfer-Encoding obfuscated (TE.TE), or where it has no meaning
    ("te_xchunked", smuggle(b"Transfer-Encoding: xchunked")),
    ("te_space_before_colon", smuggle(b"Transfer-Encoding : chunked")),
    ("te_leading_space_line", smuggle(b" " + TE)),
    ("te_obs_fold", smuggle(b"Transfer-Encoding:", b" chunked")),
    ("te_chunked_identity", smuggle(b"Transfer-Encoding: chunked, identity")),
    ("te_identity_chunked", smuggle(b"Transfer-Encoding: identity, chunked")),
    ("te_chunked_twice_in_list", smuggle(b"Transfer-Encoding: chunked, chunked")),
    ("te_two_fields", smuggle(TE, b"Transfer-Encoding: identity")),
    ("te_two_fields_chunked", smuggle(TE, TE)),
    ("te_quoted", smuggle(b'Transfer-Encoding: "chunked"')),
    ("te_name_vertical_tab", smuggle(b"Transfer-Encoding\x0b: chunked")),
    ("te_http10", smuggle(TE, version=b"1.0")),
    ("bare_cr_in_a_field", smuggle(b"X-A: a\r" + TE, CL5)),
    # A well-framed body, then a request the rules refuse: it is read as a request, and refused
    ("pipelined_admin_after_body", b"POST /ok HTTP/1.1\r\n" + H + CL5 + b"\r\n\r\nhello" + SMUGGLED),
    ("pipelined_private_after_body", b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n" + get(b"/{m}", b"private.example")),
    # Host and request line
    ("host_twice", b"GET /{m} HTTP/1.1\r\n" + H + b"Host: private.example\r\n" + CLOSE + b"\r\n"),
    ("host_twice_space_before_colon", b"GET /{m} HTTP/1.1\r\n" + H + b"host : private.example\r\n" + CLOSE + b"\r\n"),
    ("host_missing", b"GET /{m} HTTP/1.1\r\n" + CLOSE + b"\r\n"),
    ("host_with_path", get(b"/{m}", b"private.example/x")),
    ("host_with_userinfo", get(b"/{m}", b"app.example@private.example")),
    ("absolute_form_denied_path", get(b"http://app.example/admin/{m}")),
    ("absolute_form_denied_path_host_elsewhere", get(b"http://app.example/admin/{m}", b"private.example")),
    ("absolute_form_without_host", b"GET http://app.example/admin/{m} HTTP/1.1\r\n" + CLOSE + b"\r\n"),
    ("http09_request_line", b"GET /admin/{m}\r\n\r\n"),
    ("http2_version_on_http1", b"GET /admin/{m} HTTP/2.0\r\n" + H + CLOSE + b"\r\n"),
    ("version_lower_case", b"GET /{m} http/1.1\r\n" + H + CLOSE + b"\r\n"),
    ("method_lower_case", b"get /admin/{m} HTTP/1.1\r\n" + H + CLOSE + b"\r\n"),
    ("request_line_double_space", b"GET  /admin/{m} HTTP/1.1\r\n" + H + CLOSE + b"\r\n"),
    ("request_line_tabs", b"GET\t/admin/{m}\tHTTP/1.1\r\n" + H + CLOSE + b"\r\n"),
    ("connect_in_reverse_mode", b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-M: {m}\r\n\r\n"),
    ("asterisk_form", b"OPTIONS * HTTP/1.1\r\n" + H + b"X-M: {m}\r\n" + CLOSE + b"\r\n"),
    # Paths that reach /admin, or that servers read differently
    ("path_admin", get(b"/admin/{m}")),
    ("path_encoded_slash", get(b"/admin%2f{m}")),
    ("path_encoded_slash_dotdot", get(b"/x%2F..%2Fadmin/{m}")),
    ("path_dotdot_semicolon", get(b"/x/..;/admin/{m}")),
    ("path_double_encoding", get(b"/%2561dmin/{m}")),
    ("path_double_encoded_dots", get(b"/x/%252e%252e/admin/{m}")),
    ("path_overlong_utf8_dots", get(b"/x/%c0%ae%c0%ae/admin/{m}")),
    ("path_overlong_utf8_slash", get(b"/x%c0%af..%c0%afadmin/{m}")),
    ("path_backslash", get(b"/x\\..\\admin\\{m}")),
    ("path_encoded_backslash", get(b"/x/..%5cadmin/{m}")),
    ("path_encoded_dots", get(b"/x/%2e%2e/admin/{m}")),
    ("path_encoded_dots_above_root", get(b"/%2e%2e/%2e%2e/admin/{m}")),
    ("path_dotdot_above_root", get(b"/../admin/{m}")),
    ("path_encoded_nul", get(b"/admin%00/{m}")),
    ("path_raw_nul", get(b"/admin\x00/{m}")),
    ("path_encoded_tab", get(b"/admin%09/{m}")),
    ("path_encoded_crlf", get(b"/admin%0d%0a/{m}")),
    ("path_parameters", get(b"/admin;x=1/{m}")),
    ("path_encoded_semicolon", get(b"/admin%3b/{m}")),
    ("path_segment_only_parameters", get(b"/;/admin/{m}")),
    ("path_double_slash", get(b"//admin/{m}")),
    ("path_dot_segment", get(b"/./admin/{m}")),
    ("path_unreserved_escape", get(b"/%61dmin/{m}")),
    ("path_encoded_hash_dotdot", get(b"/admin%23/../admin/{m}")),
    ("path_lone_percent", get(b"/admin%/{m}")),
    ("path_invalid_escape", get(b"/admin%zz/{m}")),
    ("path_without_leading_slash", get(b"admin/{m}")),
    ("private_without_session", get(b"/{m}", b"private.example")),
]

# Refused by closing the connection without an answer (an invalid chunked body); nothing forwarded.
CLOSED_HTTP1: list[tuple[str, bytes]] = [
    ("chunk_size_bare_lf", smuggle(TE, body=b"0\n\r\n")),
    ("chunk_size_negative", smuggle(TE, body=b"-0\r\n\r\n")),
    ("chunk_size_0x", smuggle(TE, body=b"0x0\r\n\r\n")),
    ("chunk_size_leading_space", smuggle(TE, body=b" 0\r\n\r\n")),
    ("chunk_size_underscore", smuggle(TE, body=b"0_0\r\n\r\n")),
    ("chunk_extension_bare_lf", smuggle(TE, body=b"2;a\nxx\r\n0\r\n\r\n")),
    ("chunk_data_without_crlf", smuggle(TE, body=b"2\r\nxxYY0\r\n\r\n")),
    ("trailer_with_framing_fields", smuggle(TE, body=b"0\r\nTransfer-Encoding: x\r\nContent-Length: 99\r\n\r\n")),
    ("head_bare_lf_chunked", b"POST /{m} HTTP/1.1\nHost: app.example\nTransfer-Encoding: chunked\n\n0\n\n" + SMUGGLED),
]

# Not refused, and safe: mitmproxy reads these one way and forwards that reading re-framed, so the
# backend gets clean framing and the hidden request is read, and denied, by the gateway itself.
REFRAMED_HTTP1: list[tuple[str, bytes]] = [
    ("te_vertical_tab_after_value", smuggle(b"Transfer-Encoding: chunked\x0b")),
    ("te_form_feed_before_value", smuggle(b"Transfer-Encoding: \x0cchunked")),
    ("cl_vertical_tab_after_value", smuggle(b"Content-Length: 0\x0b", body=b"")),
    ("chunk_extension_nul", smuggle(TE, body=b"0;\x00\r\n\r\n")),
    ("trailer_bare_lf", smuggle(TE, body=b"0\r\nX-A: a\n\r\n")),
]
# An absolute-form target naming another resource than Host is decided by Host and forwarded in
# origin-form with that Host (README, step 2): tests/addons/test_upstream.py holds it to that.
# fmt: on

Field = tuple[bytes, bytes]
METHOD, SCHEME, AUTHORITY, PATH = b":method", b":scheme", b":authority", b":path"
NO_PATH: list[Field] = [(METHOD, b"GET"), (SCHEME, b"https"), (AUTHORITY, b"app.example")]
BASE: list[Field] = [*NO_PATH, (PATH, b"/{m}")]
POST_BASE: list[Field] = [(METHOD, b"POST"), *BASE[1:]]
GET_SCHEME: list[Field] = [(METHOD, b"GET"), (SCHEME, b"https")]


def at(path: bytes) -> list[Field]:
    return [*NO_PATH, (PATH, path)]


# fmt: off
# HTTP/2 over TLS: refused with a 4xx, a stream reset or a connection error; nothing forwarded.
REFUSED_HTTP2: list[tuple[str, list[Field], bytes]] = [
    ("path_without_leading_slash", at(b"admin/{m}"), b""),
    ("path_asterisk", [*at(b"*"), (b"x-m", b"{m}")], b""),
    ("path_empty", [*at(b""), (b"x-m", b"{m}")], b""),
    ("path_missing", [*NO_PATH, (b"x-m", b"{m}")], b""),
    ("path_twice", [*BASE, (PATH, b"/admin/{m}")], b""),
    ("path_twice_admin_first", [*at(b"/admin/{m}"), (PATH, b"/{m}")], b""),
    ("path_absolute_form", at(b"https://app.example/admin/{m}"), b""),
    ("path_absolute_form_other_resource", at(b"https://private.example/{m}"), b""),
    ("path_crlf_request", at(b"/{m} HTTP/1.1\r\n" + H + b"\r\nGET /admin/{m} HTTP/1.1"), b""),
    ("path_admin", at(b"/admin/{m}"), b""),
    ("path_encoded_slash", at(b"/admin%2f{m}"), b""),
    ("path_dotdot_semicolon", at(b"/x/..;/admin/{m}"), b""),
    ("path_dotdot", at(b"/x/../admin/{m}"), b""),
    ("authority_twice", [*BASE, (AUTHORITY, b"private.example")], b""),
    ("authority_other_resource_than_host", [*GET_SCHEME, (AUTHORITY, b"private.example"), (PATH, b"/{m}"), (b"host", b"app.example")], b""),
    ("host_other_resource_than_authority", [*BASE, (b"host", b"private.example")], b""),
    ("host_twice", [*GET_SCHEME, (PATH, b"/{m}"), (b"host", b"app.example"), (b"host", b"private.example")], b""),
    ("authority_empty", [*GET_SCHEME, (AUTHORITY, b""), (PATH, b"/{m}")], b""),
    ("authority_userinfo", [*GET_SCHEME, (AUTHORITY, b"user@private.example"), (PATH, b"/{m}")], b""),
    ("authority_crlf", [*GET_SCHEME, (AUTHORITY, b"app.example\r\nX-A: 1"), (PATH, b"/{m}")], b""),
    ("method_twice", [*BASE, (METHOD, b"POST")], b""),
    ("method_with_request_line", [(METHOD, b"GET /admin/{m} HTTP/1.1\r\nX:"), *BASE[1:]], b""),
    ("scheme_unknown", [(METHOD, b"GET"), (SCHEME, b"gopher"), *BASE[2:]], b""),
    ("pseudo_header_after_regular", [*NO_PATH, (b"x-a", b"1"), (PATH, b"/{m}")], b""),
    ("pseudo_header_unknown", [*BASE, (b":foo", b"bar")], b""),
    ("pseudo_header_status_in_request", [*BASE, (b":status", b"200")], b""),
    ("header_name_upper_case", [*BASE, (b"X-Upper", b"1")], b""),
    ("header_name_crlf", [*BASE, (b"x-a\r\nx-b", b"1")], b""),
    ("header_name_colon", [*BASE, (b"x:a", b"1")], b""),
    ("header_name_space", [*BASE, (b"x a", b"1")], b""),
    ("header_value_crlf_request", [*BASE, (b"x-a", b"a\r\n\r\n" + SMUGGLED)], b""),
    ("header_value_crlf_transfer_encoding", [*BASE, (b"x-a", b"a\r\n" + TE)], b""),
    ("header_value_lf_host", [*BASE, (b"x-a", b"a\nHost: private.example")], b""),
    ("header_value_cr", [*BASE, (b"x-a", b"a\rb")], b""),
    ("header_value_nul", [*BASE, (b"x-a", b"a\x00b")], b""),
    ("connection_header", [*BASE, (b"connection", b"keep-alive")], b""),
    ("keep_alive_header", [*BASE, (b"keep-alive", b"timeout=5")], b""),
    ("proxy_connection_header", [*BASE, (b"proxy-connection", b"keep-alive")], b""),
    ("transfer_encoding_header", [*BASE, (b"transfer-encoding", b"chunked")], b""),
    ("te_other_than_trailers", [*BASE, (b"te", b"gzip")], b""),
    ("upgrade_h2c", [*BASE, (b"upgrade", b"h2c")], b""),
    ("cl_zero_with_smuggled_body", [*POST_BASE, (b"content-length", b"0")], SMUGGLED),
    ("te_chunked_with_smuggled_body", [*POST_BASE, (b"transfer-encoding", b"chunked")], b"0\r\n\r\n" + SMUGGLED),
    ("cl_larger_than_body", [*POST_BASE, (b"content-length", b"100")], b"abc"),
    ("connect", [(METHOD, b"CONNECT"), (AUTHORITY, b"app.example:443"), (b"x-m", b"{m}")], b""),
    ("extended_connect_unannounced", [(METHOD, b"CONNECT"), (b":protocol", b"websocket"), *BASE[1:]], b""),
]
# fmt: on


@dataclass
class Edge:
    gateway: Gateway
    backend: RawBackend
    cert: Path

    def never_reached(self, marker: bytes) -> None:
        control = marker + b"-control"
        answer = send_raw(self.gateway.port, get(b"/" + control), idle=IDLE)
        assert statuses(answer) == [200], f"the control request failed: {answer[:300]!r}"
        self.backend.wait_for(control)
        received = [data.replace(control, b"") for data in self.backend.connections()]
        leaked = [data for data in received if marker in data]
        assert not leaked, f"the backend received the marker: {leaked[0][:1000]!r}"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """One gateway process for the whole corpus: a process start costs seconds on shared cores.

    Started as the start_gateway fixture starts kind "warren"; certs make it speak TLS (with h2)
    as well as plain HTTP on its one port.
    """
    directory = tmp_path_factory.mktemp("edge")
    cert = self_signed(["app.example", "private.example"])
    with RawBackend() as backend:
        port = processes.free_port()
        (directory / "policy.yaml").write_text(
            f"""\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, path: "/admin/*"}}
  private:
    host: private.example
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""
        )
        (directory / "warren.yaml").write_text(
            f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\n"
            f"certs: [{cert}]\n"
        )
        log = directory / "gateway.log"
        process = processes.start(
            processes.warren("gateway", "--config", str(directory / "warren.yaml")),
            log=log,
            cwd=directory,
        )
        gateway = Gateway(port, directory, process, log)
        try:
            processes.wait_for_port(port, process)
        except (RuntimeError, TimeoutError):
            processes.stop(process)
            pytest.fail(f"gateway did not start:\n{gateway.logs()}")
        try:
            yield Edge(gateway, backend, cert)
        finally:
            processes.stop(process)


def new_marker() -> bytes:
    return uuid.uuid4().hex[:12].encode()


def check_refused_http1(edge: Edge, raw: bytes) -> None:
    marker = new_marker()
    answer = send_raw(edge.gateway.port, raw.replace(b"{m}", marker), idle=IDLE)
    got = statuses(answer)
    assert any(400 <= status < 500 for status in got), f"not refused: {got} {answer[:300]!r}"
    assert all(status < 500 for status in got), f"answered {got}: {edge.gateway.logs()[-2000:]}"
    edge.never_reached(marker)


def params(cases: list[tuple[str, bytes]]) -> list[object]:
    return [pytest.param(raw, id=name) for name, raw in cases]


@pytest.mark.parametrize("raw", params(REFUSED_HTTP1))
def test_http1_attack_is_refused(edge: Edge, raw: bytes) -> None:
    check_refused_http1(edge, raw)


@pytest.mark.parametrize("raw", params(CLOSED_HTTP1))
def test_http1_invalid_body_closes_the_connection(edge: Edge, raw: bytes) -> None:
    marker = new_marker()
    started = time.monotonic()
    answer = send_raw(edge.gateway.port, raw.replace(b"{m}", marker), timeout=5)
    assert time.monotonic() - started < 4, "the gateway kept the connection open"
    # No answer at all, or a 4xx (which a stricter gateway may send before closing).
    assert answer == b"" or statuses(answer), answer[:300]
    assert all(400 <= status < 500 for status in statuses(answer)), answer[:300]
    edge.never_reached(marker)


@pytest.mark.parametrize("raw", params(REFRAMED_HTTP1))
def test_http1_reframed_case_reaches_the_backend_clean(edge: Edge, raw: bytes) -> None:
    marker = new_marker()
    answer = send_raw(edge.gateway.port, raw.replace(b"{m}", marker), idle=IDLE)
    assert 403 in statuses(answer) or statuses(answer) == [200], answer[:300]
    forwarded = edge.backend.wait_for(b"POST /" + marker)
    for odd in (b"\x0b", b"\x0c", b"\x00", b"X-A"):
        assert odd not in forwarded
    edge.never_reached(new_marker())  # a control request through, after anything smuggled
    assert not [c for c in edge.backend.connections() if b"/admin/" + marker in c]


def refused_h2(answer: H2Answer) -> bool:
    if 400 <= answer.status < 500:
        return True
    return answer.status == 0 and bool(answer.reset or answer.goaway)


@pytest.mark.parametrize(
    ("headers", "body"), [pytest.param(h, b, id=name) for name, h, b in REFUSED_HTTP2]
)
def test_http2_attack_is_refused(edge: Edge, headers: list[Field], body: bytes) -> None:
    marker = new_marker()
    sent = [
        (name.replace(b"{m}", marker), value.replace(b"{m}", marker)) for name, value in headers
    ]
    answer = send_h2(
        edge.gateway.port, "app.example", sent, edge.cert, body.replace(b"{m}", marker)
    )
    assert refused_h2(answer), f"not refused: {answer}"
    edge.never_reached(marker)


def test_the_corpus_reaches_the_backend_when_nothing_is_wrong(edge: Edge) -> None:
    """The corpus proves nothing if its requests fail for another reason: the same shapes, sound."""
    marker = new_marker()
    sound = post(b"Content-Length: 5").replace(b"{m}", marker) + b"hello"
    answered = send_raw(edge.gateway.port, sound + get(b"/" + marker + b"-2"), idle=IDLE)
    assert statuses(answered) == [200, 200]
    edge.backend.wait_for(marker + b"-2")
    answer = send_h2(edge.gateway.port, "app.example", at(b"/" + marker + b"-h2"), edge.cert)
    assert answer.status == 200, answer
    assert b"X-Forwarded-Proto: https" in edge.backend.wait_for(marker + b"-h2")
