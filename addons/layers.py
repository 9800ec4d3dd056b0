"""Warren's versions of three mitmproxy HTTP layers and its reverse-proxy mode layer, for what
no addon hook can reach.

mitmproxy reads request heads, bodies and upstream failures inside its layers, before or after
every hook. `Layers` puts these subclasses in the place `mitmproxy.proxy.layers.http` builds them
from, once, at load:

- `WarrenHttp1Server`: a head that grows past `http.max_head_size` gets 431 (mitmproxy reads
  one without limit: "FIXME: protect against header size DoS"); a connection that has not sent
  a whole head `http.head_timeout` after its last answer gets 408 and is closed (idle ones are
  closed without a word); trailers are dropped instead of killing the connection.
- `WarrenHttp1Client`: the same for trailers the application sends.
- `WarrenHttpStream`: every error answer (upstream unreachable, timed out, bad request) is a
  Warren page, JSON or HTML as the request accepts, with a reference also in the log and no
  `Server: mitmproxy`; a request Warren answered before its body arrived gets the answer at once,
  its body is discarded unread (never buffered: a refused 600 MB upload costs nothing); request
  trailers never reach an application (RFC 9110 §6.5.1 lets a recipient discard them); when the
  connection to the target fails, `ConnectFailedHook` lets the request path point the request
  at another target, and the connection is tried once more (addons.retry); after the 101 of
  a WebSocket whose flow carries `RELAY_RAW` (the sidecar's own tunnel stream), the bytes are
  relayed as they are, without mitmproxy's per-message parsing and hook.
- `WarrenReverseProxy`: on a raw TCP resource's port the next layer is decided as the
  connection opens, not at the client's first bytes, so a server that speaks first (SMTP,
  IMAP, FTP, MySQL) greets a client that waits for it (mitmproxy's own reverse mode opens the
  target at the first bytes unless every connection is `eager`, which HTTP routing cannot be).

`tests/addons/test_layers.py` fails if a mitmproxy upgrade moves what these rely on.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

from mitmproxy import connection, ctx, http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers import modes, tcp
from mitmproxy.proxy.layers.http import _base, _http1, _http2, _http3
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestTrailers,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook
from mitmproxy.proxy.mode_specs import ReverseMode

from addons.outcome import Refusal, error_answered, record_refusal
from addons.runtime import RuntimeSlot
from core import pages
from core.paths import split_target

log = logging.getLogger("warren.gateway")

type Commands = Generator[commands.Command, Any, None]

# How long a refused request's body is read and thrown away before the connection is closed:
# long enough for a client that only reads once it has sent everything to see the answer.
LINGER_SECONDS = 30.0
# Bodies up to this size are drained and the connection kept; larger ones close it afterwards.
_DRAIN_AND_KEEP = 1 << 20


@dataclass(slots=True)
class HeadLimits:
    max_head_size: int = 64 * 1024
    head_timeout: float = 10.0


LIMITS = HeadLimits()


class Cut(NamedTuple):
    """Why Warren itself ended a request's upstream connection (flow.metadata[CUT])."""

    status: int
    reason: str
    detail: str | None = None


CUT = "warren.cut"

# flow.metadata: after this flow's 101, relay bytes instead of WebSocket messages. Only for a
# stream whose both ends are Warren's (docs/tunnels.md, the TCP/443 fallback): an application's
# WebSocket stays parsed frame by frame, so a 101 it did not mean cannot become a raw tunnel.
RELAY_RAW = "warren.relay-raw"


@dataclass
class ConnectFailedHook(commands.StartHook):
    """The connection for `flow` could not be opened (refused, unreachable, too slow): nothing
    of the request has been sent. The request path may point it elsewhere (addons.retry); if its
    destination changed, the layer tries that once."""

    name = "warren_connect_failed"
    flow: http.HTTPFlow


def _reference() -> str:
    return secrets.token_hex(6)


def error_response(status: int, message: str) -> bytes:
    """mitmproxy's answer to a head it cannot parse (or one Warren cut off), as Warren's page."""
    reference = _reference()
    page = pages.render(status, accept=None, reference=reference)
    log.info("request head refused -> %d %s [ref %s]", status, message[:200], reference)
    response = http.Response.make(
        status,
        page.body,
        {"content-type": page.content_type, "cache-control": "no-store", "connection": "close"},
    )
    return bytes(http1.assemble_response(response))


def error_page(status_code: int, message: str) -> bytes:
    return pages.render(status_code, accept="text/html").body


def _finish_after_trailers(
    connection: _http1.Http1Connection, error: NotImplementedError, request: bool
) -> Commands:
    # h11 has read the trailer section; mitmproxy raises instead of carrying it. End the message
    # as if there were none, the way RFC 9110 §6.5.1 lets a recipient discard trailers.
    if "trailers" not in str(error):
        raise error
    stream, head = connection.stream_id, connection.request
    if stream is not None and head is not None and head.data.method.upper() != b"CONNECT":
        yield ReceiveHttp(connection.ReceiveEndOfMessage(stream))
    yield from connection.mark_done(request=request, response=not request)


class WarrenHttp1Server(_http1.Http1Server):
    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._ready_since = time.monotonic()
        self._timer: commands.RequestWakeup | None = None
        self.state = self.start  # the base class names its own start as the first state

    def _handle_event(self, event: events.Event) -> Commands:
        if isinstance(event, events.Wakeup):
            yield from self._head_deadline(event)
        else:
            yield from super()._handle_event(event)

    def start(self, event: events.Event) -> Commands:
        yield from super().start(event)
        yield from self._await_head()

    def read_headers(self, event: events.ConnectionEvent) -> Commands:
        yield from super().read_headers(event)
        if self.state == self.read_headers and len(self.buf) > LIMITS.max_head_size:
            yield commands.SendData(self.conn, error_response(431, "request head too large"))
            yield commands.CloseConnection(self.conn)
            self.state = self.done

    def read_body(self, event: events.Event) -> Commands:
        try:
            yield from super().read_body(event)
        except NotImplementedError as error:
            yield from _finish_after_trailers(self, error, request=True)

    def mark_done(self, *, request: bool = False, response: bool = False) -> Commands:
        yield from super().mark_done(request=request, response=response)
        if self.state == self.read_headers and self.request is None:
            yield from self._await_head()

    def _await_head(self) -> Commands:
        self._ready_since = time.monotonic()
        if self._timer is None:
            self._timer = commands.RequestWakeup(LIMITS.head_timeout)
            yield self._timer

    def _head_deadline(self, event: events.Wakeup) -> Commands:
        if event.command is not self._timer:
            return
        self._timer = None
        if self.state in (self.done, self.passthrough):
            return
        waited = time.monotonic() - self._ready_since
        if self.state != self.read_headers or waited < LIMITS.head_timeout:
            # A request is in progress, or a new head began: look again when its time is up.
            left = LIMITS.head_timeout - waited if self.state == self.read_headers else 0
            self._timer = commands.RequestWakeup(max(left, 0.0) or LIMITS.head_timeout)
            yield self._timer
            return
        if bytes(self.buf).strip():
            yield commands.SendData(self.conn, error_response(408, "request head too slow"))
        yield commands.CloseConnection(self.conn)
        self.state = self.done


class WarrenHttp1Client(_http1.Http1Client):
    def read_body(self, event: events.Event) -> Commands:
        try:
            yield from super().read_body(event)
        except NotImplementedError as error:
            yield from _finish_after_trailers(self, error, request=False)


class WarrenHttpStream(http_layers.HttpStream):
    _response_started = False
    _retried = False
    _connect_error = ""
    _linger: commands.RequestWakeup | None = None

    def _handle_event(self, event: events.Event) -> Commands:
        if isinstance(event, events.Wakeup):
            yield from self._linger_over(event)
        elif isinstance(event, RequestTrailers):
            return  # never forwarded: nothing decided on them
        else:
            yield from self._answering_errors(super()._handle_event(event))

    def _answering_errors(self, inner: Commands) -> Commands:
        """Pass `inner`'s commands on (and what is sent back in), replacing mitmproxy's error
        answers to the client with Warren's."""
        reply: Any = None
        while True:
            try:
                command = inner.send(reply)
            except StopIteration:
                return
            reply = None
            to_client = isinstance(command, http_layers.SendHttp) and (
                command.connection is self.context.client
            )
            if to_client:
                assert isinstance(command, http_layers.SendHttp)
                if isinstance(command.event, ResponseProtocolError):
                    answer = self._error_answer(command.event)
                    flow = getattr(self, "flow", None)
                    if flow is not None:
                        error_answered(flow)  # the access log's line, with the page's reference
                    if answer is not None:
                        yield from answer
                        continue
                elif isinstance(command.event, ResponseHeaders):
                    self._response_started |= command.event.response.status_code >= 200
            reply = yield command

    def _error_answer(self, error: ResponseProtocolError) -> list[commands.Command] | None:
        status = error.code.http_status_code()
        if status is None or self._response_started:
            return None
        flow: http.HTTPFlow | None = getattr(self, "flow", None)
        request = flow.request if flow is not None else None
        found = flow.metadata.get(CUT) if flow is not None else None
        cut = found if isinstance(found, Cut) else Cut(status, _why(request, status, error))
        reference = _reference()
        accept = request.headers.get("accept") if request is not None else None
        page = pages.render(cut.status, accept=accept, detail=cut.detail, reference=reference)
        fields = {"content-type": page.content_type, "cache-control": "no-store"}
        h1 = self.context.client.alpn not in (b"h2", b"h3")
        if h1:
            fields["connection"] = "close"
        _log_error(request, cut.status, cut.reason, reference)
        if flow is not None:  # the access log and metrics read it (addons.outcome)
            record_refusal(flow, Refusal(cut.status, cut.reason, reference))
        self._response_started = True
        response = http.Response.make(cut.status, page.body, fields)
        client = self.context.client
        answer: list[commands.Command] = [
            http_layers.SendHttp(ResponseHeaders(self.stream_id, response, False), client),
            http_layers.SendHttp(ResponseData(self.stream_id, page.body), client),
            http_layers.SendHttp(ResponseEndOfMessage(self.stream_id), client),
        ]
        if h1:
            answer.append(commands.CloseConnection(client))  # as mitmproxy's own answer does
        return answer

    def make_server_connection(self) -> Generator[commands.Command, Any, bool]:
        if (yield from self._connect()):
            return True
        request = self.flow.request
        before = (request.host, request.port, request.scheme)
        yield ConnectFailedHook(self.flow)
        moved = (request.host, request.port, request.scheme) != before
        if moved and not self._retried:
            self._retried = True  # at most once per request
            if (yield from self._connect()):
                return True
            yield ConnectFailedHook(self.flow)  # that target's failure counts too
        yield from self._connect_failed()
        return False

    def _connect(self) -> Generator[commands.Command, Any, bool]:
        # mitmproxy's make_server_connection, without its error answer: the error is kept until
        # it is known whether another target is tried.
        request = self.flow.request
        connection, err = yield http_layers.GetHttpConnection(
            (request.host, request.port),
            request.scheme == "https",
            self.flow.server_conn.via,
            self.flow.server_conn.transport_protocol,
        )
        self._connect_error = err
        if err:
            return False
        self.context.server = self.flow.server_conn = connection
        return True

    def _connect_failed(self) -> Commands:
        error = ResponseProtocolError(self.stream_id, self._connect_error, ErrorCode.CONNECT_FAILED)
        yield from self.handle_protocol_error(error)

    def flow_done(self) -> Commands:
        response = self.flow.response
        if response is None or response.status_code != 101 or not self.flow.metadata.get(RELAY_RAW):
            yield from super().flow_done()
            return
        # mitmproxy's own upgrade, with a TCP relay (no flow of its own, so no hook and no kept
        # message) where it would put its WebSocket layer: the gateway's cost is then per read,
        # not per message and its hook, which carried most of the fallback's CPU time.
        self.flow.live = False
        self.child_layer = tcp.TCPLayer(self.context, ignore=True)
        self._handle_event = self.passthrough  # type: ignore[method-assign]
        yield from self.child_layer.handle_event(events.Start())
        yield http_layers.SendHttp(ResponseEndOfMessage(self.stream_id), self.context.client)

    def state_wait_for_request_headers(self, event: RequestHeaders) -> Commands:
        yield from super().state_wait_for_request_headers(event)
        answered_first = self.flow.response is not None and not event.end_stream
        if answered_first and self.client_state == self.state_consume_request_body:
            yield from self._answer_before_body()

    def _answer_before_body(self) -> Commands:
        """Warren answered at `requestheaders`: send that now, and throw the body away."""
        response = self.flow.response
        assert response is not None
        h1 = self.context.client.alpn not in (b"h2", b"h3")
        if h1 and not _small_body(self.flow.request):
            response.headers["connection"] = "close"
        response.timestamp_start = time.time()
        yield HttpResponseHeadersHook(self.flow)
        if (yield from self.check_killed(True)):
            return
        self.client_state = self._discard_request_body
        if h1:
            self._linger = commands.RequestWakeup(LINGER_SECONDS)
            yield self._linger
        yield from self.send_response()
        if not h1:  # HTTP/2: the stream ends here; the rest of its DATA is ignored
            self.client_state = self.state_done
            yield from self.flow_done()

    def _discard_request_body(self, event: events.Event) -> Commands:
        if isinstance(event, RequestEndOfMessage):
            self._linger = None
            self.client_state = self.state_done
            yield from self.flow_done()
        elif not isinstance(event, RequestData):
            raise AssertionError(f"unexpected {event} while discarding a refused body")

    def _linger_over(self, event: events.Wakeup) -> Commands:
        if event.command is self._linger and self.client_state == self._discard_request_body:
            self._linger = None
            self.client_state = self.state_errored
            yield commands.CloseConnection(self.context.client)


class WarrenReverseProxy(modes.ReverseProxy):
    def _handle_event(self, event: events.Event) -> Commands:
        spec = self.context.client.proxy_mode
        if not isinstance(spec, ReverseMode) or spec.scheme != "tcp":
            yield from super()._handle_event(event)
        else:  # mitmproxy's Start, with a next layer that asks at once (addons.raw answers)
            self.context.server.address = spec.address
            self.child_layer = layer.NextLayer(self.context, ask_on_start=True)
            if (yield from self.finish_start()):
                yield commands.CloseConnection(self.context.client)


def _why(request: http.Request | None, status: int, error: ResponseProtocolError) -> str:
    if request is None or status < 500:
        return error.message
    return f"upstream {request.host}:{request.port} failed: {error.message}"


def _small_body(request: http.Request) -> bool:
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) <= _DRAIN_AND_KEEP


def _log_error(request: http.Request | None, status: int, reason: str, reference: str) -> None:
    level = logging.WARNING if status >= 500 else logging.INFO
    if request is None:
        log.log(level, "-> %d %s [ref %s]", status, reason[:200], reference)
        return
    log.log(
        level,
        "%s %s%s -> %d %s [ref %s]",
        request.method,
        request.host_header or "-",
        split_target(request.path)[0][:200],  # never the query: it can carry a secret
        status,
        reason[:300],
        reference,
    )


_HTTP = ("http", "https")


def _leads_to_http(top: object) -> bool:
    """mitmproxy builds a TLS client's whole stack at once (ClientTLSLayer / HttpLayer, in
    next_layer's reverse-proxy setup): the HTTP layer is a child, and this hook sees no other.
    Missing it left every HTTPS connection to the sweep, which cut long ones (a WebSocket, the
    tunnels' TCP/443 fallback) head_timeout after they connected."""
    while top is not None:
        if isinstance(top, http_layers.HttpLayer):
            return True
        top = getattr(top, "child_layer", None)
    return False


def _close_client(client_id: str) -> None:
    proxyserver: Any = ctx.master.addons.get("proxyserver")
    handler = proxyserver.connections.get(client_id) if proxyserver is not None else None
    io = handler.transports.get(handler.client) if handler is not None else None
    if handler is not None and io is not None and io.handler is not None:
        log.info("closing %s: no request within %gs", handler.client.peername, LIMITS.head_timeout)
        io.handler.cancel("no request in time")


def _close_leftover_socket(client_id: str) -> None:
    """mitmproxy's connection handler closes the client's socket after its last event, but a
    close ordered while that handler waits to deliver the client's half-close (its
    `server_event` lock, held by a hook's reply that closes the connection) cancels it before it
    gets there: the socket stayed open in CLOSE-WAIT, the client never saw the end. By the
    time of this hook the handler is done, so a writer still listed is such a leftover."""
    proxyserver: Any = ctx.master.addons.get("proxyserver")
    handler = proxyserver.connections.get(client_id) if proxyserver is not None else None
    io = handler.transports.get(handler.client) if handler is not None else None
    if io is not None and io.writer is not None and not io.writer.is_closing():
        io.writer.close()


def install() -> None:
    """Put Warren's layers where mitmproxy's HTTP layer builds its own (idempotent)."""
    for module in (_base, _http1, _http2, _http3):
        setattr(module, "format_error", error_page)  # noqa: B010 (mitmproxy's names, not ours)
    setattr(_http1, "make_error_response", error_response)  # noqa: B010
    setattr(http_layers, "Http1Server", WarrenHttp1Server)  # noqa: B010
    setattr(http_layers, "Http1Client", WarrenHttp1Client)  # noqa: B010
    setattr(http_layers, "HttpStream", WarrenHttpStream)  # noqa: B010
    setattr(modes, "ReverseProxy", WarrenReverseProxy)  # noqa: B010


class Layers:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        # HTTP clients whose connection has no HTTP layer yet (no byte, or a TLS handshake under
        # way): WarrenHttp1Server's timer cannot see them, this does.
        self._waiting: dict[str, float] = {}
        self._sweep: asyncio.Task[None] | None = None

    def load(self, loader: object) -> None:
        install()

    def running(self) -> None:
        self._sweep = asyncio.get_running_loop().create_task(self._close_silent())

    def done(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()

    def client_connected(self, client: connection.Client) -> None:
        if isinstance(client.proxy_mode, ReverseMode) and client.proxy_mode.scheme in _HTTP:
            self._waiting[client.id] = time.monotonic()

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if _leads_to_http(nextlayer.layer):
            self._waiting.pop(nextlayer.context.client.id, None)

    def client_disconnected(self, client: connection.Client) -> None:
        self._waiting.pop(client.id, None)
        _close_leftover_socket(client.id)

    async def _close_silent(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, LIMITS.head_timeout / 2))
            deadline = time.monotonic() - LIMITS.head_timeout
            for client_id in [c for c, since in self._waiting.items() if since < deadline]:
                del self._waiting[client_id]
                _close_client(client_id)

    def configure(self, updated: set[str]) -> None:
        runtime = self.slot.runtime
        if "warren_config" not in updated or runtime is None:
            return  # addons.config, before this in the pack, has built the runtime
        settings = runtime.settings
        LIMITS.max_head_size = settings.http.max_head_size
        LIMITS.head_timeout = settings.http.head_timeout.total_seconds()
