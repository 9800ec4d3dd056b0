"""For `warren explain`: which limits a request counts against, and under which key. Counts
nothing."""

from core.ipsets import IPAddress
from core.ratelimit.compiled import Limited
from core.ratelimit.subjects import Requester, subject


def applicable_limits(
    resource: Limited, match_path: str, method: str, ip: IPAddress
) -> tuple[str, ...]:
    lines = []
    requester = Requester(ip)
    for limit in resource.rate_limits:
        if not limit.applies(match_path, method):
            continue
        counted = subject(limit.per, requester, resource.name)
        note = ""
        if limit.per.kind == "user":
            note = " (no signed-in user in this request)"
        elif limit.per.kind == "header":
            note = f" (a request with {limit.per.header} counts per value)"
        lines.append(f"{limit.key}  {limit.describe()}; counts {counted}{note}")
    return tuple(lines)
