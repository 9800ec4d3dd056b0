"""Bytes to a gateway over a plain socket, for what HTTP clients normally cannot send."""

import re
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import h2.config
import h2.connection
import h2.events
import h2.exceptions

_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})[^\r\n]*\r\n")


def send_raw(port: int, data: bytes, timeout: float = 5.0, idle: float | None = None) -> bytes:
    """Send `data`, then read until the gateway closes the connection or `timeout` passes.

    With `idle`, reading also stops once that long passes with nothing new after something came
    (for a gateway that keeps the connection open). What arrived so far is returned either way (a
    reset counts as a close): a test asserts on the answers, and on whether the gateway closed.
    """
    deadline = time.monotonic() + timeout
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(data)
            while (left := deadline - time.monotonic()) > 0:
                connection.settimeout(min(left, idle) if idle is not None and received else left)
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return received


def statuses(answer: bytes) -> list[int]:
    """The status of every response in `answer`, in order (pipelined answers on one connection).

    Bodies are skipped by their framing (none for 1xx, 204 and 304; chunked; Content-Length), so a
    body that holds a status line is not mistaken for a response. A body framed by the end of the
    connection ends the list.
    """
    found = []
    at = 0
    while (line := _STATUS_LINE.match(answer, at)) is not None:
        status = int(line.group(1))
        found.append(status)
        end = answer.find(b"\r\n\r\n", at)
        if end < 0:
            break
        head, at = answer[at:end], end + 4
        if status < 200 or status in (204, 304):
            continue
        if re.search(rb"(?im)^transfer-encoding:[^\r\n]*chunked", head):
            at = _after_chunks(answer, at)
            continue
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if length is None:
            break
        at += int(length.group(1))
    return found


def _after_chunks(answer: bytes, at: int) -> int:
    while (line_end := answer.find(b"\r\n", at)) >= 0:
        size = int(answer[at:line_end].split(b";")[0].strip() or b"0", 16)
        at = line_end + 2
        if size == 0:
            trailers_end = answer.find(b"\r\n\r\n", at - 2)
            return len(answer) if trailers_end < 0 else trailers_end + 4
        at += size + 2
    return len(answer)


def status_of(answer: bytes) -> int:
    """The status of the first response; 0 when the gateway answered nothing readable."""
    found = statuses(answer)
    return found[0] if found else 0


class H2Answer(NamedTuple):
    status: int  # 0: no response came
    reset: int | None  # the RST_STREAM error code, if the stream was reset
    goaway: int | None  # the GOAWAY error code, if the connection was ended
    body: bytes


def send_h2(
    port: int,
    server_name: str,
    headers: Sequence[tuple[bytes, bytes]],
    cafile: Path,
    body: bytes = b"",
    timeout: float = 5.0,
) -> H2Answer:
    """One HTTP/2 request over TLS with `headers` sent exactly as given, in order: pseudo-headers
    anywhere, twice, malformed or missing, names in upper case (h2's own checks are off)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2"])
    config = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    connection = h2.connection.H2Connection(config)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with context.wrap_socket(raw, server_hostname=server_name) as tls:
        if tls.selected_alpn_protocol() != "h2":
            raise AssertionError(f"the gateway did not choose h2: {tls.selected_alpn_protocol()}")
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(stream, list(headers), end_stream=not body)
        if body:
            connection.send_data(stream, body, end_stream=True)
        tls.sendall(connection.data_to_send())
        return _h2_answer(tls, connection, stream, time.monotonic() + timeout)


def _h2_answer(
    tls: ssl.SSLSocket, connection: h2.connection.H2Connection, stream: int, deadline: float
) -> H2Answer:
    status, reset, goaway, body = 0, None, None, b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            tls.settimeout(left)
            data = tls.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    status = int(dict(event.headers).get(b":status", b"0"))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data
                    connection.acknowledge_received_data(len(event.data), stream)
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    reset = int(event.error_code)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    goaway = int(event.error_code or 0)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    return H2Answer(status, reset, goaway, body)
            if reset is not None or goaway is not None:
                break
            tls.sendall(connection.data_to_send())
    except (TimeoutError, ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    except h2.exceptions.ProtocolError:
        pass  # the gateway said something h2 refuses to read: what came so far is the answer
    return H2Answer(status, reset, goaway, body)
