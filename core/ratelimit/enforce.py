"""Counting a request, or a raw connection, against every limit of its resource.

The gateway calls `enforce` per HTTP request. Raw TCP/UDP resources call `count_connection`
once per new connection (a TCP accept; a UDP flow's first datagram) and close it when refused:

    counted = await count_connection(runtime.rate_limiter, resource, client_ip)
    if counted.refused_by is not None:
        ...  # close; counted.decision.retry_after() says for how long it stays refused
"""

from typing import NamedTuple

from core.ipsets import IPAddress
from core.ratelimit.compiled import CompiledLimit, Limited
from core.ratelimit.limiter import Decision, RateLimiter
from core.ratelimit.subjects import Requester, subject


class Counted(NamedTuple):
    refused_by: CompiledLimit | None  # the first full limit (or closed one, in an outage)
    decision: Decision | None  # the refusal; or, when allowed, whose RateLimit-* headers to show


ADMITTED = Counted(None, None)


async def enforce(
    limiter: RateLimiter,
    resource: Limited,
    requester: Requester,
    match_path: str = "",
    method: str = "",
) -> Counted:
    shown: Decision | None = None
    for limit in resource.rate_limits:
        if not limit.applies(match_path, method):
            continue
        decision = await limiter.hit(
            limit.rate,
            limit.counter,
            subject(limit.per, requester, resource.name),
            on_storage_error=limit.on_storage_error,
            stats=limit.headers,
        )
        if not decision.allowed:
            return Counted(limit, decision)
        if decision.remaining is not None and (
            shown is None or decision.remaining < (shown.remaining or 0)
        ):
            shown = decision
    return Counted(None, shown) if shown is not None else ADMITTED


async def count_connection(limiter: RateLimiter, resource: Limited, ip: IPAddress) -> Counted:
    """Connection-rate limits of a tcp/udp resource (per ip or per resource)."""
    if not resource.rate_limits:
        return ADMITTED
    return await enforce(limiter, resource, Requester(ip))
