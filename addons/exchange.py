"""What Warren knows about one request, carried on the flow from hook to hook."""

from dataclasses import dataclass

from mitmproxy import http

from core.auth.identity import Identity
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
    identity: Identity | None = None  # proved by a session, share link, password or basic auth
    user: str | None = None  # identity.subject for people and share links; per-user rate limits

    @property
    def resource_is_public(self) -> bool:
        return self.resource is not None and self.resource.public


def attach(flow: http.HTTPFlow, exchange: Exchange) -> Exchange:
    flow.metadata[_KEY] = exchange
    return exchange


def exchange_of(flow: http.HTTPFlow) -> Exchange | None:
    found = flow.metadata.get(_KEY)
    return found if isinstance(found, Exchange) else None
