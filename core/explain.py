"""`warren explain`: what the gateway would do with one request, and which rule decided."""

from dataclasses import dataclass, field
from functools import partial

from core.ipsets import parse_address
from core.paths import AmbiguousPath, canonicalize, split_target
from core.policy.compiled import Policy
from core.policy.model import Rule
from core.policy.rules import Facts, Outcome
from core.ratelimit.explain import applicable_limits


@dataclass(frozen=True, slots=True)
class Explanation:
    status: str  # "forward", "sign-in", "deny", "not-found", "bad-request"
    http_status: int | None
    summary: str
    resource: str | None = None
    path: str | None = None
    rule: str | None = None
    rule_text: str | None = None
    notes: tuple[str, ...] = field(default=())
    country: str | None = None  # what the rules saw; None is unknown
    asn: int | None = None
    rate_limits: tuple[str, ...] = field(default=())  # those the request counts against

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def explain(
    policy: Policy,
    host: str,
    path: str,
    ip: str,
    method: str,
    country: str | None = None,
    asn: int | None = None,
) -> Explanation:
    client = parse_address(ip)
    resource = policy.resource_for(host)
    if resource is None:
        return Explanation("not-found", 404, f"no resource serves {host}; the gateway answers 404")
    try:
        canonical = canonicalize(split_target(path)[0])
    except AmbiguousPath as error:
        return Explanation("bad-request", 400, f"refused with 400: {error}", resource.name)
    facts = Facts(client, canonical.match, method.upper(), country, asn)
    verdict = policy.decide(resource, facts)
    rule = verdict.rule.key if verdict.rule else None
    text = rule_text(verdict.rule.rule) if verdict.rule else None
    found = partial(
        Explanation,
        resource=resource.name,
        path=canonical.path,
        rule=rule,
        rule_text=text,
        country=country,
        asn=asn,
    )
    if verdict.outcome is Outcome.DENY:
        return found("deny", 403, f"denied by {rule}: the gateway answers 403")
    limits = applicable_limits(resource, canonical.match, method.upper(), client)
    found = partial(found, rate_limits=limits)
    if verdict.outcome is Outcome.ALLOW:
        return found("forward", None, f"allowed by {rule} without sign-in")
    why = f"{rule} passes to sign-in" if rule else "no rule matched"
    if resource.public:
        return found("forward", None, f"{why}; the resource is public (auth: public)")
    who = resource.auth
    needs = "any signed-in user"
    if who is not None and (who.users or who.groups):
        needs = ", ".join([*(f"user {u}" for u in who.users), *(f"group {g}" for g in who.groups)])
    if who is not None:
        alternatives = [
            ("the resource's password", who.password_hash is not None),
            ("the resource's PIN", who.pin_hash is not None),
            ("a share link", who.share_links),
            ("basic auth", who.basic_auth),
        ]
        needs += "".join(f", or {text}" for text, offered in alternatives if offered)
    return found("sign-in", None, f"{why}; sign-in required ({needs})")


def rule_text(rule: Rule) -> str:
    parts = []
    for name, value in rule.conditions().items():
        if isinstance(value, tuple | list):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        parts.append(f"{name}: {value}")
    return "{" + ", ".join(parts) + "}"
