"""Deciding a raw TCP or UDP connection: the same rules as HTTP, with what a connection has.

A connection has a client address, a country and an ASN (looked up when the policy asks); it
has no path and no method, so a rule with a path or method condition never holds for it
(`warren check` refuses such rules on tcp/udp resources; global ones simply do not apply). A raw
resource cannot ask for sign-in: a connection is let through when a rule allows it, or when the
resource is `auth: public` and no rule denies it. A source the databases cannot place meets the
rules as an HTTP client does (core.policy.rules): `country: [KP]` never matches it, `country_not`
does, and `country: [XX]` or `asn: [0]` names it.

`admit_connection` is the one place a connection's verdict is made; `addons.raw` calls it
with the connection's GeoIP facts, and counts the connection against its rate limits next to it.
"""

from typing import NamedTuple

from core.ipsets import IPAddress
from core.policy.compiled import CompiledResource, Policy
from core.policy.rules import Facts, Outcome, Verdict

# Not a path any pattern matches (patterns and canonical paths start with "/"), and no method.
NO_PATH = "\x00"
NO_METHOD = ""


class Admission(NamedTuple):
    allowed: bool
    verdict: Verdict
    reason: str


def connection_facts(ip: IPAddress, country: str | None = None, asn: int | None = None) -> Facts:
    return Facts(ip, NO_PATH, NO_METHOD, country, asn)


def admit_connection(policy: Policy, resource: CompiledResource, facts: Facts) -> Admission:
    verdict = policy.decide(resource, facts)
    rule = verdict.rule.key if verdict.rule is not None else None
    if verdict.outcome is Outcome.DENY:
        return Admission(False, verdict, f"denied by {rule or 'a rule'}")
    if verdict.outcome is Outcome.ALLOW:
        return Admission(True, verdict, f"allowed by {rule}")
    if resource.public:
        return Admission(True, verdict, "public resource")
    return Admission(
        False,
        verdict,
        f"{'passed on by ' + rule if rule else 'no rule allows it'}, and a connection "
        "cannot sign in (auth: public, or an allow rule, lets it through)",
    )
