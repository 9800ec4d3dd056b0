"""What Warren knows about one request, filled in by the pipeline's steps in their order.

A step reads what earlier steps decided. What a step reads before the step that decides it has
run is an error (so a misordered pipeline answers 500), never a silent None.
"""

from dataclasses import dataclass

from mitmproxy import http

from addons.runtime import Runtime
from core.auth.identity import Identity
from core.clientip import ClientAddress
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Target
from core.policy.rules import Verdict

_KEY = "warren"


class NotYetDecided(RuntimeError):
    """A step read what a later step decides: the pipeline's order is wrong."""


@dataclass(slots=True)
class Exchange:
    runtime: Runtime  # the services deciding this request, even if they are swapped meanwhile
    policy: Policy  # likewise the policy version, even if a reload lands meanwhile
    _client: ClientAddress | None = None  # addons.clientip
    _resource: CompiledResource | None = None  # addons.routing
    host: str = ""  # the request's Host, normalised (core.hosts), read once (addons.routing)
    path: str = ""  # canonical; what the backend receives (addons.routing)
    match_path: str = ""  # what rules match: `path` without ;parameters
    _verdict: Verdict | None = None  # addons.rules
    identity: Identity | None = None  # proved by a session, share link, password or basic auth
    user: str | None = None  # identity.subject for people and share links; per-user rate limits
    target: Target | None = None  # addons.upstream: where the request goes
    candidates: tuple[Target, ...] = ()  # addons.upstream: the targets it was chosen from
    routed: bool = False  # counted in by the balancer, not yet counted out
    relayed_by: str | None = None  # addons.relay: the node that decided it; nothing to decide
    answered_by: str | None = None  # addons.pipeline: the step that answered, if one did

    @property
    def client(self) -> ClientAddress:
        return _decided(self._client, "the client address")

    @client.setter
    def client(self, client: ClientAddress) -> None:
        self._client = client

    @property
    def resource(self) -> CompiledResource:
        return _decided(self._resource, "the resource")

    @resource.setter
    def resource(self, resource: CompiledResource) -> None:
        self._resource = resource

    @property
    def verdict(self) -> Verdict:
        return _decided(self._verdict, "the rules' verdict")

    @verdict.setter
    def verdict(self, verdict: Verdict) -> None:
        self._verdict = verdict

    @property
    def decided_verdict(self) -> Verdict | None:
        """The verdict, or None when the request was answered before the rules (addons.outcome
        reads it after the fact, where "not yet decided" is an answer)."""
        return self._verdict

    @property
    def routed_to(self) -> Target:
        return _decided(self.target, "the target")


def _decided[T](value: T | None, what: str) -> T:
    if value is None:
        raise NotYetDecided(f"{what} is read before the step that decides it")
    return value


def attach(flow: http.HTTPFlow, exchange: Exchange) -> Exchange:
    flow.metadata[_KEY] = exchange
    return exchange


def exchange_of(flow: http.HTTPFlow) -> Exchange | None:
    found = flow.metadata.get(_KEY)
    return found if isinstance(found, Exchange) else None
