"""Deadlines towards targets, so no request waits on a target that will not answer:

- a connection that has not opened `timeouts.connect` after it was begun is given up: 504
  (without it, the kernel's SYN retries hold a request to a silent tunnel for over two minutes);
- a response that has not started `timeouts.first_byte` after the whole request was received
  (and sent on): its connection is closed, 504;
- when a site leaves routing (its tunnel went down, its secret changed: `core.sites`),
  every request and connection to it is cut at once: 502 (raw TCP/UDP: closed).

mitmproxy has no such timeouts. The connection attempt runs in a task of its own, from the
`server_connect` hook to the connection's end; ending that task is how mitmproxy itself closes a
connection, and the HTTP layer then answers (with Warren's page and the status in `layers.CUT`).
"""

import asyncio
import logging
from dataclasses import dataclass

from mitmproxy import http
from mitmproxy.connection import Server
from mitmproxy.proxy import server_hooks

from addons.exchange import Exchange
from addons.failclosed import fail_closed_connection, kill_server
from addons.layers import CUT, Cut
from addons.raw import RawResources

log = logging.getLogger("warren.gateway")

type Address = tuple[str, int]

_ARMED_FOR = "warren.deadlines"  # flow.metadata: the address its deadlines are set for


@dataclass(slots=True)
class _Asked:
    """What a routed request expects of the connection it will open."""

    flow: http.HTTPFlow
    site: str | None
    connect: float
    first_byte: float


@dataclass(slots=True)
class _Connection:
    server: Server
    task: asyncio.Task[object]
    site: str | None
    flow: http.HTTPFlow | None  # the request that opened it (raw connections have none)


class Deadlines:
    def __init__(self, raw: RawResources) -> None:
        self.raw = raw
        self._asked: dict[tuple[str, Address], _Asked] = {}  # (client id, address) -> request
        self._connections: dict[str, _Connection] = {}  # server connection id -> its task
        self._waiting: dict[str, tuple[asyncio.TimerHandle, _Asked]] = {}  # flow id -> first byte
        self._in_flight: dict[str, tuple[http.HTTPFlow, str]] = {}  # flow id -> its site

    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        timeouts = exchange.resource.model.timeouts
        address = (flow.request.host, flow.request.port)
        site = exchange.routed_to.site
        flow.metadata[_ARMED_FOR] = address
        self._asked[(flow.client_conn.id, address)] = _Asked(
            flow, site, timeouts.connect.total_seconds(), timeouts.first_byte.total_seconds()
        )
        if site is not None:
            self._in_flight[flow.id] = (flow, site)

    def request(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        asked = self._asked.get((flow.client_conn.id, (flow.request.host, flow.request.port)))
        if asked is None or asked.flow is not flow or flow.response is not None:
            return
        timer = asyncio.get_running_loop().call_later(asked.first_byte, self._too_slow, flow)
        self._waiting[flow.id] = (timer, asked)

    def connect_failed(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        if flow.metadata.get(_ARMED_FOR) != (flow.request.host, flow.request.port):
            # addons.retry pointed it at another target: its connection gets the same deadlines
            found = flow.metadata.get(CUT)
            if isinstance(found, Cut) and found.status == 504:
                del flow.metadata[CUT]  # the first target's; the second decides the answer
            self.requestheaders(flow, exchange)

    def responseheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        self._finished(flow)

    def error(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        self._finished(flow)

    @fail_closed_connection(kill_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        task = asyncio.current_task()  # the attempt and then the connection: server.py's task
        address = data.server.address
        if task is None or address is None:
            return
        asked = self._asked.pop((data.client.id, address), None)
        route = self.raw.route_of(data.client.id) if asked is None else None
        if asked is not None:
            site, connect = asked.site, asked.connect
        elif route is not None:
            site, connect = route.key[0], route.connect_timeout
        else:
            return
        known = _Connection(data.server, task, site, asked.flow if asked else None)
        self._connections[data.server.id] = known
        timer = asyncio.get_running_loop().call_later(connect, self._no_connection, known, connect)
        task.add_done_callback(lambda _: self._forget(known, timer))

    def cut_site(self, site: str) -> None:
        why = Cut(502, f"site {site} left routing", _SITE_GONE)
        flows = [flow for flow, on in self._in_flight.values() if on == site]
        for flow in flows:
            flow.metadata.setdefault(CUT, why)
        cut = {c.server.id: c for c in self._connections.values() if c.site == site}
        cut |= {f.server_conn.id: self._connections[f.server_conn.id] for f in flows
                if f.server_conn.id in self._connections}  # fmt: skip
        for known in cut.values():
            known.task.cancel(why.reason)
        if cut or flows:
            log.warning("site %s left routing: %d requests and %d connections cut",
                        site, len(flows), len(cut))  # fmt: skip

    def _no_connection(self, known: _Connection, seconds: float) -> None:
        if known.server.timestamp_tcp_setup is not None or known.task.done():
            return
        host, port = known.server.address or ("?", 0)
        why = Cut(504, f"upstream {host}:{port} did not connect within {seconds:g}s")
        if known.flow is not None:
            known.flow.metadata.setdefault(CUT, why)
        log.warning("%s", why.reason)
        known.task.cancel(why.reason)

    def _too_slow(self, flow: http.HTTPFlow) -> None:
        waiting = self._waiting.pop(flow.id, None)
        known = self._connections.get(flow.server_conn.id)
        if waiting is None or known is None or flow.response is not None:
            return
        why = Cut(504, f"no response within {waiting[1].first_byte:g}s", _TOO_SLOW)
        flow.metadata.setdefault(CUT, why)
        known.task.cancel(why.reason)

    def _finished(self, flow: http.HTTPFlow) -> None:
        waiting = self._waiting.pop(flow.id, None)
        if waiting is not None:
            waiting[0].cancel()
        key = (flow.client_conn.id, (flow.request.host, flow.request.port))
        asked = self._asked.get(key)
        if asked is not None and asked.flow is flow:
            del self._asked[key]
        self._in_flight.pop(flow.id, None)

    def _forget(self, known: _Connection, timer: asyncio.TimerHandle) -> None:
        timer.cancel()
        self._connections.pop(known.server.id, None)


_SITE_GONE = "The private server that runs this application went offline. Try again shortly."
_TOO_SLOW = "The application did not start answering in time."
