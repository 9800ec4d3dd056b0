"""Sending the PROXY protocol to a target that asks for it (`proxy_protocol: v1|v2`).

A PROXY header belongs to a connection and must be its first bytes (proxy-protocol.txt §2:
"the header must be sent at once, in a single write, at the beginning of the connection"), so it
is written by the layer that opens the server connection, right after the connect succeeds and
before any byte of the client's: mitmproxy holds a layer's events while its OpenConnection is
pending, so nothing the client sent can overtake it.
"""

from typing import Any

from mitmproxy import connection, http
from mitmproxy.addons import next_layer
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import TCPLayer, tls
from mitmproxy.proxy.layers import http as http_layers

from addons.exchange import Exchange
from addons.retry import RETRIED
from core.clientip import peer_address
from core.ipsets import IPAddress
from core.proxyprotocol import Endpoint, Version, encode


def header_for(
    version: Version, client: IPAddress, peername: tuple[str, int], sockname: tuple[str, int]
) -> bytes:
    """The header naming `client` (the address Warren decided, after trusted-proxy handling)
    from the peer's port, to the node's address and port the client reached."""
    node = Endpoint(peer_address(sockname[0]), sockname[1])
    return encode(version, Endpoint(client, peername[1]), node)


class ProxyHeaderTCPLayer(TCPLayer):
    """mitmproxy's flowless TCP relay that first writes `header` on the new server connection."""

    def __init__(self, context: Context, header: bytes) -> None:
        super().__init__(context, ignore=True)
        self._header = header

    def start(self, event: events.Event) -> layer.CommandGenerator[None]:
        yield from super().start(event)  # mitmproxy's, which checks `event` is Start
        if self._handle_event == self.relay_messages:  # connected; on failure it is `done`
            yield commands.SendData(self.context.server, self._header)

    _handle_event = start


# HTTP targets. mitmproxy opens a connection to a target inside its HTTP layer, long after the
# request hooks, and keeps it for the next requests of the same client connection (never for
# another client's: each client connection has its own). The request that routed there leaves
# the header it wants in its flow (`_WANTED`); `_HeaderBoundHttpLayer`, where the HTTP layer
# opens a connection for that very request, leaves it here by client connection and address,
# and the layers built for that connection take it at once: `_HeaderFirstHttpClient` for plain
# HTTP, `_HeaderFirstServerTls` before the ClientHello for https targets.
_PENDING: dict[str, dict[tuple[str, int], bytes]] = {}
_WANTED = "warren.proxy-header"  # flow.metadata: (header, whether it needs its own connection)


def _pending(context: Context) -> bytes:
    by_address = _PENDING.get(context.client.id)
    address = context.server.address
    if by_address is None or address is None:
        return b""
    return by_address.pop((address[0], address[1]), b"")


def _header_after_connect(
    commands_in: layer.CommandGenerator[None], server: connection.Server, header: bytes
) -> layer.CommandGenerator[None]:
    """`commands_in`, with `header` sent the moment its OpenConnection of `server` succeeds."""
    reply: Any = None
    try:
        while True:
            command = commands_in.send(reply)
            reply = yield command
            opened = isinstance(command, commands.OpenConnection) and command.connection is server
            if opened and reply is None:  # connected (an error is a string)
                yield commands.SendData(server, header)
    except StopIteration:
        return


class _HeaderBoundHttpLayer(http_layers.HttpLayer):
    def get_connection(
        self, event: http_layers.GetHttpConnection, *, reuse: bool = True
    ) -> layer.CommandGenerator[None]:
        """The header of the request that asks is the one its connection starts with. A request
        of a forwarded client never shares one: over HTTP/2 a trusted proxy's concurrent streams
        are different people, and a connection still opening would otherwise take the next."""
        stream = self.command_sources.get(event)
        flow = getattr(stream, "flow", None)
        wanted = flow.metadata.get(_WANTED) if isinstance(flow, http.HTTPFlow) else None
        by_address = _PENDING.setdefault(self.context.client.id, {})
        if wanted is None:
            by_address.pop(event.address, None)
        else:
            header, own_connection = wanted
            by_address[event.address] = header
            reuse = reuse and not own_connection
        yield from super().get_connection(event, reuse=reuse)


class _HeaderFirstHttpClient(http_layers.HttpClient):
    def __init__(self, context: Context) -> None:
        super().__init__(context)
        server = context.server
        self._header = b"" if server.connected or server.tls else _pending(context)

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        header, self._header = self._header, b""
        if not header:
            yield from super()._handle_event(event)
            return
        yield from _header_after_connect(super()._handle_event(event), self.context.server, header)


class _HeaderFirstServerTls(tls.ServerTLSLayer):
    def __init__(self, context: Context, conn: connection.Server | None = None) -> None:
        super().__init__(context, conn)
        self._header = _pending(context) if isinstance(self.conn, connection.Server) else b""

    def start_handshake(self) -> layer.CommandGenerator[None]:
        if self._header:
            yield commands.SendData(self.conn, self._header)
        yield from super().start_handshake()


class ProxyHeaderStep:
    """After Upstream: the header a new connection to the chosen target starts with."""

    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        _expect_header(flow, exchange)

    def connect_failed(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        """addons.retry, in Upstream's step of this phase, may have pointed the request at
        another target: the connection opened to it starts with that target's header."""
        if RETRIED in flow.metadata:
            _expect_header(flow, exchange)


def _expect_header(flow: http.HTTPFlow, exchange: Exchange) -> None:
    target = exchange.target
    if target is None or target.proxy_protocol is None or not flow.client_conn.sockname:
        flow.metadata.pop(_WANTED, None)
        return
    client = exchange.client
    header = header_for(
        target.proxy_protocol, client.ip, flow.client_conn.peername, flow.client_conn.sockname
    )
    flow.metadata[_WANTED] = (header, client.via != "peer")
    if client.via != "peer":
        # The client came from a forwarded header: the next request on this connection may
        # be someone else's, so the target closes this one after its answer (RFC 9112 §9.6)
        # and the next request gets a new connection, with its own header.
        flow.request.headers["connection"] = "close"


class ProxyHeaderConnections:
    """Puts the two layers where mitmproxy's HTTP layer builds connections from, and forgets a
    client connection's headers when it closes."""

    def load(self, loader: object) -> None:
        # mitmproxy's next-layer addon builds the HTTP layer by both of these names.
        setattr(layers, "HttpLayer", _HeaderBoundHttpLayer)  # noqa: B010
        setattr(next_layer, "HttpLayer", _HeaderBoundHttpLayer)  # noqa: B010
        setattr(http_layers, "HttpClient", _HeaderFirstHttpClient)  # noqa: B010
        setattr(tls, "ServerTLSLayer", _HeaderFirstServerTls)  # noqa: B010

    def client_disconnected(self, client: connection.Client) -> None:
        _PENDING.pop(client.id, None)
