"""Rate limits (DESIGN.md, step 4): after the rules, before authentication.

Each limit that applies to the request (global ones first, then the resource's) counts it; the
first one that is full answers 429 with Retry-After and RateLimit-* headers. A storage outage is
decided per limit by `on_storage_error`: `open` lets the request go on, `closed` answers 503.
"""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import refuse
from core.ratelimit.compiled import CompiledLimit
from core.ratelimit.enforce import enforce
from core.ratelimit.limiter import Decision
from core.ratelimit.subjects import Requester

_SHOWN = "warren.ratelimit"  # flow.metadata: the Decision whose headers the response carries


class RateLimits:
    async def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        resource = exchange.resource
        if not resource.rate_limits:
            return
        requester = Requester(exchange.client.ip, exchange.user, flow.request.headers)
        verdict = await enforce(
            exchange.runtime.limiter, resource, requester, exchange.match_path, flow.request.method
        )
        if verdict.refused_by is not None:
            assert verdict.decision is not None
            _refuse(flow, verdict.refused_by, verdict.decision)
        elif verdict.decision is not None:
            flow.metadata[_SHOWN] = verdict.decision

    def responseheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        shown = flow.metadata.pop(_SHOWN, None)
        if isinstance(shown, Decision) and flow.response is not None:
            flow.response.headers.update(shown.headers())


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
