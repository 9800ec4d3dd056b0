"""The standard library's WSGI server (wsgiref.simple_server) as a backend, in a thread.

It is the kind of backend that reads headers CGI-style: `X-Remote_User` and `X-Remote-User` both
become `HTTP_X_REMOTE_USER`, and repeated headers are joined. Its app records what it was given
(every `HTTP_*` variable, `REMOTE_USER`, `PATH_INFO`, `QUERY_STRING`, `REQUEST_METHOD`,
`SERVER_NAME`) and answers 200 with that as JSON.
"""

import json
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

_RECORDED = ("REMOTE_USER", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "SERVER_NAME")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class WsgiBackend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._environs: list[dict[str, str]] = []
        self._server: WSGIServer = make_server(
            "127.0.0.1", 0, self._app, handler_class=_QuietHandler
        )
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="wsgi-backend", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def environs(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(environ) for environ in self._environs]

    def wait_for(self, marker: str, timeout: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            for environ in self.environs():
                if marker in environ.get("PATH_INFO", "") or marker in environ.get(
                    "QUERY_STRING", ""
                ):
                    return environ
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no request with {marker!r} in its path or query within {timeout}s; "
                    f"received {self.environs()!r}"
                )
            time.sleep(0.02)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen = {
            key: str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_") or key in _RECORDED
        }
        with self._lock:
            self._environs.append(seen)
        body = json.dumps(seen).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
