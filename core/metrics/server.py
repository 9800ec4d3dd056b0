"""The one metrics and health listener every Warren process runs (gateway, portal, sidecar), on
asyncio so it shares the process's event loop (the core imports no aiohttp or mitmproxy).

It answers three paths, GET or HEAD:

- `/metrics`: the process's own registry in Prometheus's text format (prometheus_client's
  `generate_latest`, never hand-written);
- `/healthz`: 200 "ok" while the process serves (the loop answering is the proof);
- `/readyz`: 200 or 503 from the process's own readiness callable.

Anything else is 404, another method 405. The request head is bounded (8 KiB) and must arrive
within a few seconds; every answer closes the connection (RFC 9112 §9.6: `Connection: close`),
so there is no keep-alive state to bound. The listener is TCP (loopback by default) or a Unix
socket, created mode 0660 so a scraper in the process's group may read it.

A listener that cannot bind (the port taken, say by another test gateway on the default port)
is a WARNING and the process goes on without metrics: losing metrics is no reason not to serve,
and mitmproxy ends the gateway on an error logged while it starts.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.settings import MetricsListen

log = logging.getLogger("warren.metrics")

MAX_HEAD = 8 * 1024
READ_TIMEOUT_S = 5.0
SOCKET_MODE = 0o660

type ReadyCheck = Callable[[], Awaitable["Ready"]]
type Refresh = Callable[[], Awaitable[None]]  # before a scrape: what a collector cannot await


@dataclass(frozen=True, slots=True)
class Ready:
    ready: bool
    detail: str = "ok"  # one line for the body: never an address, a key or an error's text


async def always_ready() -> Ready:
    return Ready(True)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    allow: bool = False


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class MetricsServer:
    def __init__(
        self,
        listen: MetricsListen,
        registry: CollectorRegistry,
        ready: ReadyCheck = always_ready,
        refresh: Refresh | None = None,
    ) -> None:
        self.listen = listen
        self.registry = registry
        self.ready = ready
        self.refresh = refresh
        self._server: asyncio.Server | None = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> bool:
        """Listen; False (with a warning) if the address cannot be had."""
        try:
            if self.listen.unix is not None:
                path = self.listen.unix
                with contextlib.suppress(FileNotFoundError):
                    if path.is_socket():  # a stale socket of an earlier run; never a file
                        path.unlink()
                self._server = await asyncio.start_unix_server(self._handle, path=path)
                os.chmod(path, SOCKET_MODE)
            else:
                self._server = await asyncio.start_server(
                    self._handle, self.listen.host, self.listen.port
                )
        except OSError as error:
            log.warning(
                "metrics listener %s not started (%s); serving without metrics",
                self.listen,
                error.strerror or error,
            )
            return False
        log.info("metrics, /healthz and /readyz on %s", self.listen)
        return True

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)
        if self.listen.unix is not None:
            with contextlib.suppress(OSError):
                self.listen.unix.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head_only = False
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                answer = _Answer(431, b"request head too large\n")
            except (asyncio.IncompleteReadError, TimeoutError):
                return  # gone or too slow: nothing worth answering
            else:
                if len(head) > MAX_HEAD:
                    answer = _Answer(431, b"request head too large\n")
                else:
                    method, answer = await self._answer(head)
                    head_only = method == "HEAD"
            writer.write(_response(answer, head_only))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[str, _Answer]:
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "", _Answer(400, b"bad request\n")
        method, target = parts[0], parts[1]
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/healthz", "/readyz"):
            return method, _Answer(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return method, _Answer(405, b"method not allowed\n", allow=True)
        if path == "/healthz":
            return method, _Answer(200, b"ok\n")
        if path == "/readyz":
            try:
                found = await self.ready()
            except Exception as error:  # a readiness check that fails says "not ready"
                log.warning("readiness check failed: %r", error)
                found = Ready(False, "check failed")
            return method, _Answer(200 if found.ready else 503, found.detail.encode() + b"\n")
        if self.refresh is not None:
            try:
                await self.refresh()
            except Exception as error:  # what it could not refresh is left out, not the rest
                log.warning("refreshing metrics failed: %r", error)
        return method, _Answer(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)


def _response(answer: _Answer, head_only: bool) -> bytes:
    fields = [
        f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, '')}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",  # RFC 9110 §9.3.2: HEAD's is GET's length
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if answer.allow:
        fields.append("Allow: GET, HEAD")  # RFC 9110 §15.5.6: a 405 says what is allowed
    head = ("\r\n".join(fields) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + answer.body
