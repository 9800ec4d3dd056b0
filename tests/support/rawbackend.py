"""A backend that records the exact bytes it receives, for proving what a gateway forwarded.

It reads just enough HTTP/1.1 to answer each request (the head up to CRLFCRLF, then a body by
chunked Transfer-Encoding, trailers included, or by Content-Length) with a small 200 on a kept-alive
connection, so each pipelined or kept-alive request is answered and recorded on its own.

With `upgrade=True`, a request carrying an `Upgrade` header is answered `101 Switching Protocols`
(echoing the Upgrade value). From then on the connection's bytes are recorded, nothing is echoed,
and any HTTP/1 request found in them is answered as above: a test can prove that a second request
reached the backend through an upgraded connection unchecked.

Every byte is kept per connection (`connections()`), even what never parses as a request; an
unfinished request when a connection closes is kept in `requests()` too, as it arrived.
"""

import contextlib
import re
import socket
import threading
import time
from types import TracebackType
from typing import Self

BODY = b"raw backend ok\n"
_HEAD_END = b"\r\n\r\n"
# Where an HTTP/1 request may begin inside the bytes of an upgraded connection.
_REQUEST_LINE = re.compile(rb"[A-Z]+ \S+ HTTP/1\.[01]\r\n")


class Incomplete(Exception):
    """More bytes are needed before this request ends."""


class Malformed(Exception):
    """No length can be read from this request; the rest of the connection is only recorded."""


class RawBackend:
    def __init__(self, upgrade: bool = False, host: str = "127.0.0.1") -> None:
        self.upgrade = upgrade
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = socket.create_server((host, 0), family=family)
        self._server.settimeout(0.1)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[bytearray] = []
        self._requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._open: dict[socket.socket, bytearray] = {}
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="raw-backend", daemon=True)

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._server.close()
        with self._lock:
            for connection in self._open:
                _shut(connection)
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def connections(self) -> list[bytes]:
        with self._lock:
            return [bytes(received) for received in self._connections]

    def requests(self) -> list[bytes]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            for request in self.requests():
                if marker in request:
                    return request
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no request containing {marker!r} within {timeout}s; "
                    f"received {self.requests()!r}"
                )
            time.sleep(0.02)

    def clear(self) -> None:
        """Forget what was received; connections still open go on being recorded."""
        with self._lock:
            still_open = {id(received) for received in self._open.values()}
            for received in self._connections:
                received.clear()
            self._connections = [r for r in self._connections if id(r) in still_open]
            self._requests.clear()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            received = bytearray()
            thread = threading.Thread(
                target=self._serve, args=(connection, received), name="raw-conn", daemon=True
            )
            with self._lock:
                self._connections.append(received)
                self._open[connection] = received
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket, received: bytearray) -> None:
        buffer = b""
        upgraded = malformed = False
        try:
            connection.settimeout(0.2)
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                with self._lock:
                    received += chunk
                if malformed:
                    continue
                buffer += chunk
                try:
                    buffer, upgraded, close = self._answer(connection, buffer, upgraded)
                except Malformed:
                    self._record(buffer)
                    buffer, malformed = b"", True
                    continue
                if close:
                    buffer = b""
                    break
        except OSError:
            pass
        finally:
            if buffer.strip(b"\r\n") and not upgraded:
                self._record(buffer)  # what arrived of a request that never ended
            with self._lock:
                self._open.pop(connection, None)
            _shut(connection)

    def _answer(
        self, connection: socket.socket, buffer: bytes, upgraded: bool
    ) -> tuple[bytes, bool, bool]:
        """Answer every whole request in `buffer`; the rest, whether upgraded, whether to close."""
        while True:
            if upgraded:
                found = _REQUEST_LINE.search(buffer)
                if found is None:
                    return buffer[-64:], upgraded, False  # keep a tail a request line may span
                buffer = buffer[found.start() :]
            try:
                length, head = request_length(buffer)
            except Incomplete:
                return buffer, upgraded, False
            request, buffer = buffer[:length], buffer[length:]
            self._record(request)
            upgrade = header(head, b"upgrade")
            if self.upgrade and upgrade is not None and not upgraded:
                connection.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                    b"Upgrade: " + upgrade + b"\r\n\r\n"
                )
                upgraded = True
                continue
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
            )
            connection_header = (header(head, b"connection") or b"").lower()
            http10 = head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")
            if b"close" in connection_header or (http10 and b"keep-alive" not in connection_header):
                return buffer, upgraded, True

    def _record(self, request: bytes) -> None:
        with self._lock:
            self._requests.append(request)


def request_length(buffer: bytes) -> tuple[int, bytes]:
    """How many bytes of `buffer` the first request takes (head and body), and its head."""
    end = buffer.find(_HEAD_END)
    if end < 0:
        raise Incomplete
    head = buffer[: end + len(_HEAD_END)]
    start = len(head)
    encoding = header(head, b"transfer-encoding")
    if encoding is not None and b"chunked" in encoding.lower():
        return start + _chunked_length(buffer[start:]), head
    length = header(head, b"content-length")
    if length is None:
        return start, head
    try:
        size = int(length.split(b",")[0].strip())
    except ValueError:
        raise Malformed from None
    if len(buffer) - start < size:
        raise Incomplete
    return start + size, head


def _chunked_length(body: bytes) -> int:
    at = 0
    while True:
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            raise Incomplete
        try:
            size = int(body[at:line_end].split(b";")[0].strip(), 16)
        except ValueError:
            raise Malformed from None
        at = line_end + 2
        if size == 0:
            break
        if len(body) < at + size + 2:
            raise Incomplete
        at += size + 2
    while True:  # trailers, up to an empty line
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            raise Incomplete
        empty = line_end == at
        at = line_end + 2
        if empty:
            return at


def header(head: bytes, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case) in a request head, as bytes."""
    for line in head.split(b"\r\n")[1:]:
        field, colon, value = line.partition(b":")
        if colon and field.strip().lower() == name:
            return value.strip()
    return None


def _shut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()
