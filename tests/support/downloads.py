"""A local stand-in for MaxMind's and DB-IP's download servers, on loopback.

It serves real .mmdb files packed as each provider ships them: MaxMind's permalink API
(`/app/geoip_download?edition_id=...&license_key=...&suffix=tar.gz|tar.gz.sha256`) and DB-IP's
lite files (`/free/dbip-EDITION-YYYY-MM.mmdb.gz`). A file can be served cut short (the
connection closes early), with a wrong checksum, or not at all.
"""

import gzip
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LICENSE_KEY = "test-license-key"


@dataclass
class Served:
    body: bytes
    status: int = 200
    cut_after: int | None = None  # send only this many bytes, then close the connection


@dataclass
class Downloads:
    url: str
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def maxmind(self, edition: str, mmdb: bytes, *, checksum: str | None = None) -> bytes:
        archive = maxmind_archive(edition, mmdb)
        digest = checksum or hashlib.sha256(archive).hexdigest()
        self.files[f"maxmind/{edition}.tar.gz"] = Served(archive)
        self.files[f"maxmind/{edition}.tar.gz.sha256"] = Served(
            f"{digest}  {edition}_20250107.tar.gz\n".encode()
        )
        return archive

    def dbip(self, name: str, mmdb: bytes) -> bytes:
        compressed = gzip.compress(mmdb)
        self.files[f"dbip/{name}"] = Served(compressed)
        return compressed


def maxmind_archive(edition: str, mmdb: bytes, member: str | None = None) -> bytes:
    """EDITION_YYYYMMDD/EDITION.mmdb beside the licence texts, as MaxMind ships it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("COPYRIGHT.txt", b"Database and Contents Copyright (c) MaxMind, Inc.\n"),
            ("LICENSE.txt", b"Use of this MaxMind product is governed by ...\n"),
            (member or f"{edition}.mmdb", mmdb),
        ):
            info = tarfile.TarInfo(f"{edition}_20250107/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _handler(state: Downloads) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            url = urlsplit(self.path)
            if url.path == "/app/geoip_download":
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if query.get("license_key") != LICENSE_KEY:
                    self._send(Served(b"Invalid license key\n", status=401))
                    return
                key = f"maxmind/{query.get('edition_id')}.{query.get('suffix')}"
            elif url.path.startswith("/free/"):
                key = f"dbip/{url.path.removeprefix('/free/')}"
            else:
                key = ""
            self._send(state.files.get(key, Served(b"not found\n", status=404)))

        def _send(self, served: Served) -> None:
            self.send_response(served.status)
            self.send_header("Content-Length", str(len(served.body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            body = served.body if served.cut_after is None else served.body[: served.cut_after]
            self.wfile.write(body)
            if served.cut_after is not None:
                self.wfile.flush()
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def download_server() -> Iterator[Downloads]:
    state = Downloads(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
