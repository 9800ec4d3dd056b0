"""Who is asking: the first Warren hook; it starts the request's Exchange."""

from mitmproxy import http

from addons.exchange import Exchange, attach
from addons.failclosed import fail_closed
from addons.respond import refuse
from addons.runtime import Runtime
from core.clientip import ClientAddress, ForwardingError, peer_address


class ClientIp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        policy = self.runtime.policy
        if policy is None:
            refuse(flow, 503, reason="warren_config is not set")
            return
        peer = peer_address(flow.client_conn.peername[0])
        if not policy.trust:
            attach(flow, Exchange(policy, ClientAddress(peer, peer, "peer")))
            return
        headers = flow.request.headers
        try:
            client = policy.trust.resolve(
                peer, ",".join(headers.get_all("x-forwarded-for")), headers.get("cf-connecting-ip")
            )
        except ForwardingError as error:
            refuse(
                flow,
                400,
                detail="A proxy in front of Warren sent an unreadable client address.",
                reason=str(error),
            )
            return
        attach(flow, Exchange(policy, client))
