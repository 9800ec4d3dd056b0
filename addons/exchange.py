"""What Warren knows about one request, carried on the flow from hook to hook."""

from dataclasses import dataclass

from mitmproxy import http

from core.clientip import ClientAddress
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Target
from core.policy.rules import Verdict

_KEY = "warren"


@dataclass(slots=True)
class Exchange:
    policy: Policy  # the version that decides this request, even if a reload lands meanwhile
    client: ClientAddress
    resource: CompiledResource | None = None
    path: str = ""  # canonical; what the backend receives
    match_path: str = ""
    verdict: Verdict | None = None
    target: Target | None = None
    routed: bool = False
    user: str | None = None  # the signed-in identity, set by sign-in before rate limits run

    @property
    def resource_is_public(self) -> bool:
        return self.resource is not None and self.resource.public


def attach(flow: http.HTTPFlow, exchange: Exchange) -> Exchange:
    flow.metadata[_KEY] = exchange
    return exchange


def exchange_of(flow: http.HTTPFlow) -> Exchange | None:
    found = flow.metadata.get(_KEY)
    return found if isinstance(found, Exchange) else None
