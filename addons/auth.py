"""Authentication: who is asking. Until the portal exists, sign-in cannot succeed."""

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from core.policy.rules import Outcome


class Auth:
    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or exchange.verdict is None or flow.response is not None:
            return
        if exchange.verdict.outcome is Outcome.SIGN_IN and not exchange.resource_is_public:
            refuse(
                flow,
                401,
                detail="This application needs sign-in, and no sign-in portal is "
                "configured on this gateway.",
                reason="sign-in required",
            )
