"""The access log (core.accesslog): a line per request once its answer is final, and the last
refusals for `warren` control's `refusals` (the admin console).

The pipeline's last step, so its `response` and `error` see what every step before them did,
whichever step answered. It is also a part of the pack: it opens the log when warren_config is
set (again when it changes), reopens the file on SIGUSR1 while the gateway runs, and closes it
at `done`.

Per request it builds one dict and writes it once; what the settings say (mode, file, query
strings, node name) is read when the runtime changes, never per request. What the request
carried in its head (cookies, Authorization) is never read here; the query string only with
`logging.access_query`, and a share link's token never.
"""

import asyncio
import contextlib
import logging
import signal
import time

from mitmproxy import exceptions, http

from addons.exchange import Exchange, NotYetDecided
from addons.layers import CUT, Cut
from addons.outcome import after_error_answer, decision_of, refusal_of, resource_name
from addons.runtime import Runtime, RuntimeSlot
from core.accesslog import AccessWriter, RecentRefusals, Record, loggable_query
from core.logs import iso_time

log = logging.getLogger("warren.accesslog")

_RAW_PATH = 200  # a path not yet made canonical is shown cut to this
_NO_ANSWER_WAIT = 1.0  # seconds: a failure the HTTP layer does not answer is logged after this


class AccessLog:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot
        self.refusals = RecentRefusals()
        self._writer: AccessWriter | None = None
        self._opened_as: tuple[object, ...] | None = None
        self._runtime: Runtime | None = None
        self._write_all = False
        self._write_refused = False
        self._query = False
        self._node = ""
        self._sigusr1 = False

    # -- the part: the log's file, its settings, SIGUSR1

    def configure(self, updated: set[str]) -> None:
        runtime = self.slot.runtime
        if "warren_config" in updated and runtime is not None:
            self._adopt(runtime)

    def running(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.reopen)
        except (NotImplementedError, RuntimeError, ValueError):
            return  # not the main thread (an embedding test): the log still works, unrotated
        self._sigusr1 = True

    def done(self) -> None:
        if self._sigusr1:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self._sigusr1 = False
        self._stop_writing()

    def reopen(self) -> None:
        if self._writer is not None:
            self._writer.reopen()

    def recent_refusals(self) -> list[Record]:
        return self.refusals.newest_first()

    def _adopt(self, runtime: Runtime) -> None:
        settings = runtime.settings
        logs = settings.logging
        wanted = (logs.access_file, logs.format)
        if logs.access == "off":
            self._stop_writing()
        elif wanted != self._opened_as:
            try:
                writer = AccessWriter(logs.access_file, logs.format)
            except OSError as error:
                raise exceptions.OptionsError(
                    f"Warren cannot start: logging.access_file {logs.access_file}: "
                    f"{error.strerror or error}"
                ) from None
            self._stop_writing()
            self._writer, self._opened_as = writer, wanted
        self._write_all = logs.access == "all"
        self._write_refused = logs.access in ("all", "refused")
        self._query = logs.access_query
        self._node = settings.node_name
        self._runtime = runtime

    def _adopt_or_log(self, runtime: Runtime) -> None:
        try:
            self._adopt(runtime)
        except exceptions.OptionsError as error:
            log.warning("%s", error)
            self._runtime = runtime  # said once; the requests go on unlogged

    def _stop_writing(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._opened_as = None, None

    # -- the step: a line per request

    def response(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        response = flow.response
        self._log(flow, exchange, response.status_code if response is not None else None)

    def error(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        if flow.response is not None:  # the answer broke off on its way: its status stands
            self._log(flow, exchange, flow.response.status_code)
            return
        # mitmproxy calls this hook before its HTTP layer answers the failure with Warren's page
        # (addons.layers): the line is written just after, with what that answer recorded; or,
        # when no answer can reach the client (it went away), a moment later all the same.
        logged = False

        def once() -> None:
            nonlocal logged
            if not logged:
                logged = True
                self._log_failure(flow, exchange)

        after_error_answer(flow, once)
        asyncio.get_running_loop().call_later(_NO_ANSWER_WAIT, once)

    def _log_failure(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        refusal = refusal_of(flow)
        cut = flow.metadata.get(CUT)
        if refusal is not None:
            status: int | None = refusal.status
        elif isinstance(cut, Cut):
            status = cut.status  # a deadline of addons.deadlines: the page has this status
        else:
            status = None  # the client went away, or the page's status is not recorded
        self._log(flow, exchange, status)

    def _log(self, flow: http.HTTPFlow, exchange: Exchange, status: int | None) -> None:
        try:
            self._write(flow, exchange, status)
        except Exception:  # a line that cannot be made never changes the request's answer
            log.exception("no access log line for %s", flow.request.method)

    def _write(self, flow: http.HTTPFlow, exchange: Exchange, status: int | None) -> None:
        if self._runtime is None:  # a pack whose configure never saw warren_config (tests)
            self._adopt_or_log(exchange.runtime)
        refused = status is None or status >= 400
        if not refused and not self._write_all:
            return  # `refused` or `off`: an allowed request costs nothing more
        record = self._record(flow, exchange, status)
        if refused:
            self.refusals.add(record)
        writer = self._writer
        if writer is not None and (self._write_all or (refused and self._write_refused)):
            writer.write(record)

    def _record(self, flow: http.HTTPFlow, exchange: Exchange, status: int | None) -> Record:
        now = time.time()
        request, response = flow.request, flow.response
        refusal = refusal_of(flow)
        try:
            address = exchange.client
            client, client_from = str(address.ip), _FROM[address.via]
        except NotYetDecided:  # answered before the client address was decided: the peer
            client, client_from = flow.client_conn.peername[0], "peer"
        raw_path, _, query = request.path.partition("?")
        verdict = exchange.decided_verdict
        target = exchange.target
        reason: str | None = refusal.reason if refusal is not None else None
        if reason is None and response is None and flow.error is not None:
            cut = flow.metadata.get(CUT)
            reason = cut.reason if isinstance(cut, Cut) else flow.error.msg
        record: dict[str, object] = {
            "time": iso_time(now),
            "component": "gateway",
            "event": "request",
            "node": self._node,
            "client": client,
            "client_from": client_from,
            "host": request.host_header,
            "method": request.method,
            "path": exchange.path or raw_path[:_RAW_PATH],
            "resource": resource_name(exchange),
            "rule": verdict.rule.key if verdict is not None and verdict.rule is not None else None,
            "decision": decision_of(flow, exchange),
            "status": status,
            "reason": reason or None,
            "bytes": _body_bytes(request, response),
            "upstream": target.url if target is not None else None,
            "route": exchange.route.key if exchange.route is not None else None,
            "upstream_ms": (
                _upstream_ms(flow) if target is not None and exchange.answered_by is None else None
            ),
            "duration_ms": round((now - request.timestamp_start) * 1000, 1),
            "user": exchange.user,
            "reference": refusal.reference if refusal is not None else None,
        }
        if self._query:  # last, so the other keys keep their places
            record["query"] = loggable_query(query) or None
        return record


_FROM = {"peer": "peer", "x-forwarded-for": "trusted-proxy", "cf-connecting-ip": "trusted-proxy"}


def _body_bytes(request: http.Request, response: http.Response | None) -> int | None:
    """The body bytes the answer carries: none for HEAD (addons.respond strips them after this),
    the Content-Length of a body streamed past the gateway (it keeps none), else unknown."""
    if response is None:
        return None
    if request.method == "HEAD":
        return 0
    if response.raw_content is not None:
        return len(response.raw_content)
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _upstream_ms(flow: http.HTTPFlow) -> float | None:
    """From the request's leaving for the target (read whole, and the connection up) to the
    target's response head, by mitmproxy's timestamps."""
    response = flow.response
    if response is None or not response.timestamp_start:
        return None
    server = flow.server_conn
    request = flow.request
    sent = max(
        request.timestamp_end or request.timestamp_start,
        server.timestamp_tcp_setup or 0.0,
        server.timestamp_tls_setup or 0.0,
    )
    return round(max(response.timestamp_start - sent, 0.0) * 1000, 1)
