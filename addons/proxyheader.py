"""Sending the PROXY protocol to a target that asks for it (`proxy_protocol: v1|v2`).

A PROXY header belongs to a connection and must be its first bytes (proxy-protocol.txt §2:
"the header must be sent at once, in a single write, at the beginning of the connection"), so it
is written by the layer that opens the server connection, right after the connect succeeds and
before any byte of the client's: mitmproxy holds a layer's events while its OpenConnection is
pending, so nothing the client sent can overtake it.
"""

from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import TCPLayer

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
