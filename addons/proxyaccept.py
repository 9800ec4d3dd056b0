"""Accepting the PROXY protocol from a trusted L4 load balancer in front of the gateway
(warren.yaml `listen_proxy_protocol: true`), on the HTTP(S) listener, `http_listen` and raw TCP
resource ports (`RawProxyHeaderLayer`, set by addons.raw).

Whose header counts is the policy's `trusted_proxies` networks (not `cloudflare`: its HTTP edge
never sends one). A connection from such a peer must start with a valid header, v1 or v2; its
source address then replaces the socket peer for everything after (rules, geo, rate limits,
forwarded-for trust, logs). A header that is malformed, incomplete at close, or sent by anyone
else closes the connection with a log line: proxy-protocol.txt §2 ("the receiver must not try
to guess whether the PROXY header is present or not") - a header is never believed from a peer
not configured to send one, and never optional from one that is.

mitmproxy has decided the top layer (its reverse-proxy mode layer) when `next_layer` is first
called; `ProxyHeaderLayer` wraps it and feeds it the connection only once the header has been
read and cut off, so TLS and HTTP detection below see the stream the client sent. Like
mitmproxy's own NextLayer, it takes itself out of `context.layers`, so every stack check
(mitmproxy's next-layer decisions, Warren's) sees the stack it would without it.
"""

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from mitmproxy import connection
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import modes

from addons.options import listen_modes
from addons.runtime import RuntimeSlot
from core.clientip import peer_address
from core.proxyprotocol import V1_PREFIX, V2_SIGNATURE, ProxyHeaderError, decode

log = logging.getLogger("warren.gateway")

type Handler = Callable[[events.Event], layer.CommandGenerator[None]]


class ProxyHeaderLayer(layer.Layer):
    """Reads the PROXY header of a trusted peer's connection, then hands the rest of the stream to
    a fresh NextLayer, for mitmproxy to decide TLS and HTTP on the bytes after the header."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.context.layers.remove(self)  # invisible in the stack, as mitmproxy's NextLayer is
        self._buffer = b""
        self._held: list[events.Event] = []
        self._then: Handler | None = None  # once the header is read: the next layer, or nothing

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        client = self.context.client
        if self._then is not None:
            yield from self._then(event)
        elif isinstance(event, events.DataReceived) and event.connection == client:
            self._buffer += event.data
            yield from self._read()
        elif isinstance(event, events.ConnectionClosed) and event.connection == client:
            if self._buffer:
                _refuse(client, "closed before its PROXY header ended")
            yield commands.CloseConnection(client)
        else:
            self._held.append(event)  # Start and the like: the next layer gets them in order

    def _read(self) -> layer.CommandGenerator[None]:
        client = self.context.client
        try:
            header = decode(self._buffer)
        except ProxyHeaderError as error:
            _refuse(client, str(error))
            yield from self._close()
            return
        if header is None:
            return  # more to come (addons.layers' head timeout bounds the wait)
        if header.source is not None:  # §2.1/§2.2: LOCAL, UNKNOWN keep the real endpoints
            client.peername = (str(header.source.ip), header.source.port)
        child = yield from self._after_header()
        if child is None:
            yield from self._close()
            return
        self._then = child.handle_event
        for held in self._held:
            yield from child.handle_event(held)
        if rest := self._buffer[header.length :]:
            yield from child.handle_event(events.DataReceived(client, rest))

    def _close(self) -> layer.CommandGenerator[None]:
        self._then = _ignore
        yield commands.CloseConnection(self.context.client)

    def _after_header(self) -> Generator[commands.Command, Any, layer.Layer | None]:
        """The layer for the stream after the header (None: close the connection)."""
        yield from ()
        return layer.NextLayer(self.context)


class RawProxyHeaderLayer(ProxyHeaderLayer):
    """The same on a raw TCP resource's port: the connection is decided on the header's client
    (ClientKnownHook, addons.raw), then relayed by what `relay` builds, or closed when it gives
    nothing. The header must be whole within `timeout` seconds; a balancer sends it at once,
    so a server-speaks-first protocol (SMTP) is not left waiting for the client."""

    def __init__(
        self, context: Context, relay: Callable[[Context], layer.Layer | None], timeout: float
    ) -> None:
        super().__init__(context)
        self._relay = relay
        self._timer = commands.RequestWakeup(timeout)

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if self._then is None and isinstance(event, events.Start):
            self._held.append(event)
            yield self._timer
        elif isinstance(event, events.Wakeup) and event.command is self._timer:
            if self._then is None:  # once the header is read, its deadline is no longer news
                _refuse(self.context.client, "no whole PROXY header in time")
                yield from self._close()
        else:
            yield from super()._handle_event(event)

    def _after_header(self) -> Generator[commands.Command, Any, layer.Layer | None]:
        yield ClientKnownHook(self.context.client)
        return self._relay(self.context)


@dataclass
class ClientKnownHook(commands.StartHook):
    """A raw TCP connection's PROXY header has been read: `client.peername` is the client the
    balancer names, and the connection can be decided now (addons.raw), before any byte of it
    goes on."""

    name = "warren_raw_client_known"
    client: connection.Client


class RefusedLayer(layer.Layer):
    """Closes the connection at once: a PROXY header from a peer whose header does not count."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        self._handle_event = _ignore  # type: ignore[method-assign]
        yield commands.CloseConnection(self.context.client)


def _ignore(event: events.Event) -> layer.CommandGenerator[None]:
    yield from ()


def _refuse(client: connection.Client, reason: str) -> None:
    log.warning("connection from %s refused: %s", client.peername[0], reason)


class ProxyProtocolAccept:
    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        runtime = self.slot.runtime
        if runtime is None or not runtime.settings.listen_proxy_protocol:
            return
        context, client = nextlayer.context, nextlayer.context.client
        # Only the first decision under the listener's reverse-proxy mode (the one after a header
        # is made by the NextLayer ProxyHeaderLayer starts, not the mode's own).
        mode = context.layers[0] if context.layers else None
        if not isinstance(mode, modes.ReverseProxy) or mode.child_layer is not nextlayer:
            return
        if client.proxy_mode.full_spec not in listen_modes(runtime.settings):
            return  # a raw TCP/UDP resource's port is not covered (docs/configuration.md)
        trusted = runtime.policy.trust.sends_proxy_header(peer_address(client.peername[0]))
        if trusted:
            chosen: layer.Layer = ProxyHeaderLayer(context)
        elif nextlayer.data_client().startswith((V1_PREFIX, V2_SIGNATURE)):
            _refuse(client, "a PROXY header from a peer not in trusted_proxies")
            chosen = RefusedLayer(context)
        else:
            return
        # mitmproxy's next-layer addon (earlier in the chain) chose on bytes that began with the
        # header; what it built is dropped from the stack before anything ran.
        del context.layers[1:]
        nextlayer.layer = chosen
