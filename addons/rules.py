"""The ordered rules of DESIGN.md: global, then the resource's; the first match decides."""

from mitmproxy import http

from addons.exchange import Exchange
from addons.respond import refuse
from addons.siteapi import NAME as SITE_API
from core.policy.rules import Facts, Outcome


class Rules:
    def requestheaders(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        policy, ip = exchange.policy, exchange.client.ip
        if (
            policy.model.require_trusted_proxy
            and not policy.trust.vouches_for(exchange.client.peer)
            and exchange.resource.name != SITE_API  # sites reach the node on its own name
        ):
            refuse(flow, 403, reason="require_trusted_proxy: not through a trusted proxy")
            return
        country, asn = exchange.runtime.geo_facts(policy, ip)
        facts = Facts(ip, exchange.match_path, flow.request.method, country, asn)
        verdict = policy.decide(exchange.resource, facts)
        exchange.verdict = verdict
        if verdict.outcome is Outcome.DENY:
            refuse(flow, 403, reason=verdict.rule.key if verdict.rule else "deny")
