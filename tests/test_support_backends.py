"""The recording backends and the raw client of tests.support, on loopback, without a gateway."""

import json
import time

import pytest

from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_raw, status_of, statuses
from tests.support.wsgi import WsgiBackend

PIPELINED = (
    b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"GET /four HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
)


def test_each_pipelined_request_is_answered_and_recorded_as_sent(raw_backend: RawBackend) -> None:
    answer = send_raw(raw_backend.port, PIPELINED)
    assert statuses(answer) == [200, 200, 200, 200]
    assert raw_backend.connections() == [PIPELINED]
    assert b"".join(raw_backend.requests()) == PIPELINED
    assert raw_backend.requests()[2].endswith(b"0\r\nX-Trailer: t\r\n\r\n")
    assert raw_backend.wait_for(b"/four").startswith(b"GET /four ")


def test_an_unfinished_request_is_kept_as_it_arrived(raw_backend: RawBackend) -> None:
    partial = b"POST /cut HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly this"
    assert send_raw(raw_backend.port, partial, timeout=0.5) == b""  # then the client leaves
    assert raw_backend.wait_for(b"/cut") == partial
    assert raw_backend.requests() == [partial]
    with pytest.raises(AssertionError, match="no request containing b'/never'"):
        raw_backend.wait_for(b"/never", timeout=0.1)


def test_clear_forgets_what_was_received(raw_backend: RawBackend) -> None:
    send_raw(raw_backend.port, b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
    raw_backend.clear()
    assert raw_backend.requests() == []
    assert raw_backend.connections() == []
    send_raw(raw_backend.port, b"GET /y HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert raw_backend.wait_for(b"/y")


def test_an_upgraded_connection_records_and_still_answers_http(
    upgrading_backend: RawBackend,
) -> None:
    sent = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x85\x00\x00\x00\x00hello"
        b"GET /admin/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    answer = send_raw(upgrading_backend.port, sent)
    assert statuses(answer) == [101, 200]
    assert b"Upgrade: websocket\r\n" in answer
    assert upgrading_backend.connections() == [sent]
    assert upgrading_backend.wait_for(b"/admin/after").startswith(b"GET /admin/after ")


def test_send_raw_can_stop_at_a_pause_on_a_kept_alive_connection(raw_backend: RawBackend) -> None:
    started = time.monotonic()
    answer = send_raw(raw_backend.port, b"GET /kept HTTP/1.1\r\n\r\n", timeout=10, idle=0.2)
    assert statuses(answer) == [200]
    assert time.monotonic() - started < 5


def test_statuses_skip_bodies_by_their_framing() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nHTTP/1.1 999 body"
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"11\r\nHTTP/1.1 998 body\r\n0\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    )
    assert statuses(answer) == [200, 403, 400]
    assert status_of(answer) == 200
    assert status_of(b"") == 0


def test_the_wsgi_backend_reads_headers_cgi_style(wsgi_backend: WsgiBackend) -> None:
    sent = (
        b"GET /w%41?q=mark HTTP/1.1\r\nHost: wsgi.example\r\nX-Remote_User: under\r\n"
        b"X-Seen: one\r\nX-Seen: two\r\nConnection: close\r\n\r\n"
    )
    answer = send_raw(wsgi_backend.port, sent)
    assert status_of(answer) == 200
    environ = wsgi_backend.wait_for("mark")
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == environ
    assert environ["PATH_INFO"] == "/wA"
    assert environ["HTTP_X_REMOTE_USER"] == "under"
    assert environ["HTTP_X_SEEN"] == "one,two"
    assert environ["REQUEST_METHOD"] == "GET"
    assert wsgi_backend.environs() == [environ]
