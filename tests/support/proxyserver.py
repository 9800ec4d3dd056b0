"""A TCP server that expects the PROXY protocol (v1 or v2) first on each connection, parsed here
independently of core/proxyprotocol, and answers with what it was told:
`b"<src-ip> <src-port> <dst-ip> <dst-port>|"` followed by the bytes that came after the header,
echoed until the client half-closes. A connection without a readable header is answered `b"bad|"`.

With `http=True` it is an HTTP/1.1 target instead: each request on the connection (a head, no
body) is answered 200 with what the header said as the body, so a test sees which connection,
with which header, carried each request.
"""

import ipaddress
import socket
import struct
import threading
from types import TracebackType
from typing import Self

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed inside the header")
        data += chunk
    return data


def parse(conn: socket.socket) -> str:
    first = _read(conn, 16)
    if first.startswith(SIGNATURE):
        family, length = first[13], struct.unpack("!H", first[14:16])[0]
        block = _read(conn, length)
        size = {0x11: 4, 0x21: 16}[family]
        src, dst = (ipaddress.ip_address(block[i * size : (i + 1) * size]) for i in (0, 1))
        sport, dport = struct.unpack("!HH", block[2 * size : 2 * size + 4])
        return f"{src} {sport} {dst} {dport}"
    line = first
    while not line.endswith(b"\r\n"):
        line += _read(conn, 1)
    _, _, source, destination, sport, dport = line.decode().split()
    return f"{source} {sport} {destination} {dport}"


class ProxyProtocolServer:
    def __init__(self, http: bool = False) -> None:
        self.http = http
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.seen: list[str] = []
        self.after: dict[str, bytes] = {}  # header said -> the first bytes after it (not http)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                said = parse(conn)
            except (ConnectionError, KeyError, ValueError, OSError):
                said = "bad"
            self.seen.append(said)
            if self.http:
                _answer_requests(conn, said.encode())
                return
            try:
                conn.sendall(said.encode() + b"|")
                while chunk := conn.recv(65536):
                    self.after.setdefault(said, chunk)
                    conn.sendall(chunk)
            except OSError:
                return


def _answer_requests(conn: socket.socket, body: bytes) -> None:
    pending = b""
    try:
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            close = b"connection: close" in head.lower()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s"
                % (len(body), b"connection: close\r\n" if close else b"", body)
            )
            if close:
                return
    except OSError:
        return
