"""Who is asking: the socket peer, or the address a trusted proxy forwarded (core.clientip)."""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import refuse
from core.clientip import ClientAddress, ForwardingError, peer_address


class ClientIp:
    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        peer = peer_address(flow.client_conn.peername[0])
        trust = exchange.policy.trust
        if not trust:
            exchange.client = ClientAddress(peer, peer, "peer")
            return
        headers = flow.request.headers
        try:
            exchange.client = trust.resolve(
                peer, ",".join(headers.get_all("x-forwarded-for")), headers.get("cf-connecting-ip")
            )
        except ForwardingError as error:
            refuse(
                flow,
                400,
                detail="A proxy in front of Warren sent an unreadable client address.",
                reason=str(error),
            )
