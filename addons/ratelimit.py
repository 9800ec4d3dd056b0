"""Rate limits (DESIGN.md, step 4): after the rules, before authentication.

Each limit that applies to the request (global ones first, then the resource's) counts it; the
first one that is full answers 429 with Retry-After and RateLimit-* headers. A storage outage is
decided per limit by `on_storage_error`: `open` lets the request go on, `closed` answers 503.
"""

import logging

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from addons.runtime import Runtime
from core.policy.compiled import Policy
from core.ratelimit.check import located_warnings
from core.ratelimit.compiled import CompiledLimit
from core.ratelimit.enforce import enforce
from core.ratelimit.keys import Requester
from core.ratelimit.limiter import Decision, RateLimiter

log = logging.getLogger("warren.ratelimit")

_SHOWN = "warren.ratelimit"  # flow.metadata: the Decision whose headers the response carries


class RateLimit:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def configure(self, updated: set[str]) -> None:
        settings, store = self.runtime.settings, self.runtime.store
        if "warren_config" not in updated or settings is None or store is None:
            return
        self.runtime.rate_limiter = RateLimiter(settings.storage)
        sign_in = store.capabilities.sign_in
        _log_warnings(store.current, sign_in)
        store.subscribe(lambda policy: _log_warnings(policy, sign_in))

    async def done(self) -> None:
        if self.runtime.rate_limiter is not None:
            await self.runtime.rate_limiter.close()

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or exchange.verdict is None or flow.response is not None:
            return
        resource = exchange.resource
        assert resource is not None
        if not resource.rate_limits:
            return
        limiter = self.runtime.rate_limiter
        if limiter is None:
            raise RuntimeError("the policy has rate limits but no limiter was configured")
        requester = Requester(exchange.client.ip, exchange.user, flow.request.headers)
        verdict = await enforce(
            limiter, resource, requester, exchange.match_path, flow.request.method
        )
        if verdict.refused_by is not None:
            assert verdict.decision is not None
            _refuse(flow, verdict.refused_by, verdict.decision)
        elif verdict.decision is not None:
            flow.metadata[_SHOWN] = verdict.decision

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        shown = flow.metadata.pop(_SHOWN, None)
        if isinstance(shown, Decision) and flow.response is not None:
            flow.response.headers.update(shown.headers())


def _log_warnings(policy: Policy, sign_in: bool) -> None:
    # What `warren check` warns about, for admins who only read the gateway's log.
    for warning in located_warnings(policy.model, policy.source, sign_in=sign_in):
        log.warning("%s", warning)


def _refuse(flow: http.HTTPFlow, limit: CompiledLimit, decision: Decision) -> None:
    wait = decision.retry_after()
    if decision.storage_failed:
        refuse(
            flow,
            503,
            detail="Warren cannot count requests to this application right now, and it only "
            "accepts requests it can count. Try again shortly.",
            reason=f"{limit.key} has on_storage_error: closed (storage outage)",
            headers={"Retry-After": str(wait)},
        )
        return
    refuse(
        flow,
        429,
        detail="You have made too many requests. "
        f"Try again in {wait} second{'s' if wait != 1 else ''}.",
        reason=f"rate limited by {limit.key}: {limit.rate.text} per {limit.per}",
        headers=decision.headers(),
    )
