"""The ordered rules of DESIGN.md: global, then the resource's; the first match decides."""

from mitmproxy import http

from addons.exchange import exchange_of
from addons.failclosed import fail_closed
from addons.respond import refuse
from addons.runtime import Runtime
from core.policy.rules import Facts, Outcome


class Rules:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        if exchange is None or exchange.resource is None or flow.response is not None:
            return
        policy, ip = exchange.policy, exchange.client.ip
        country, asn = self.runtime.place(policy, ip)
        facts = Facts(ip, exchange.match_path, flow.request.method, country, asn)
        verdict = policy.decide(exchange.resource, facts)
        exchange.verdict = verdict
        if verdict.outcome is Outcome.DENY:
            refuse(flow, 403, reason=verdict.rule.key if verdict.rule else "deny")
