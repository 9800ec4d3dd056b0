"""Authentication enforced: whoever `addons.identify` proved, checked against the resource.

A request that needs sign-in and has no identity: a browser is sent to the portal (or told to
sign in), an API client gets 401. A signed-in person the resource does not list gets 403.
"""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import redirect, refuse
from addons.signin import browser, original_url
from core.auth.access import permitted
from core.policy.rules import Outcome


class Auth:
    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        if exchange.verdict.outcome is not Outcome.SIGN_IN or exchange.resource.public:
            return
        identity = exchange.identity
        if identity is None:
            self._challenge(flow, exchange)
        elif not permitted(identity, exchange.resource.auth):
            refuse(
                flow,
                403,
                detail=f"You are signed in as {identity.subject}, and this application is not "
                "open to that account. Ask its administrator, or sign out and use another one.",
                reason=f"{identity.subject} is not allowed on {exchange.resource.name}",
            )

    def _challenge(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        signin = exchange.runtime.signin
        if browser(flow):
            target = signin.sign_in_url(original_url(flow, exchange.client))
            if target is not None:
                redirect(flow, target)
                return
        auth = exchange.resource.auth
        realm = exchange.resource.name
        if auth is not None and auth.basic_auth:
            challenge = f'Basic realm="{realm}", charset="UTF-8"'
        else:
            challenge = f'Warren realm="{realm}"'
        refuse(
            flow,
            401,
            detail="Sign in first" + (f" at {signin.portal_url}." if signin.portal_url else "."),
            reason="sign-in required",
            headers={"www-authenticate": challenge},
        )
