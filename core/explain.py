"""`warren explain`: what the gateway would do with one request, and which rule decided."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from core.ipsets import parse_address
from core.paths import AmbiguousPath, CanonicalPath, canonicalize, split_target
from core.policy.compiled import CompiledResource, Policy
from core.policy.model import UNKNOWN_ASN, UNKNOWN_COUNTRY, Rule
from core.policy.rules import CompiledRule, Facts, Outcome, RuleRef
from core.ratelimit.explain import applicable_limits
from core.regions import NAMES


@dataclass(frozen=True, slots=True)
class Explanation:
    status: str  # "forward", "sign-in", "deny", "not-found", "bad-request"
    http_status: int | None
    summary: str
    resource: str | None = None
    path: str | None = None
    rule: str | None = None
    rule_text: str | None = None
    notes: tuple[str, ...] = field(default=())  # where the decision rests on an unknown place
    country: str | None = None  # what the rules saw; None is unknown
    asn: int | None = None
    rate_limits: tuple[str, ...] = field(default=())  # those the request counts against
    route: str | None = None  # the route chosen (core.policy.routes), where it is written
    target_path: str | None = None  # what the target receives, when a route rewrites it

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
        notes=unknown_notes(policy, resource, facts, verdict.rule),
        country=country,
        asn=asn,
    )
    if verdict.outcome is Outcome.DENY:
        return found("deny", 403, f"denied by {rule}: the gateway answers 403")
    limits = applicable_limits(resource, canonical.match, method.upper(), client)
    found = partial(found, rate_limits=limits, **_route_fields(resource, canonical))
    if resource.routes and resource.routes.choose(canonical.match) is None and not resource.targets:
        return found(
            "not-found",
            404,
            f"no route of {resource.name} serves {canonical.path}: the "
            "gateway answers 404 (once the rules and sign-in let the request through)",
        )
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


def _route_fields(resource: CompiledResource, canonical: CanonicalPath) -> dict[str, str | None]:
    """The route the request goes by (after the rules, on the client's path) and, when it
    rewrites, the path its target gets."""
    route = resource.routes.choose(canonical.match) if resource.routes else None
    if route is None:
        return {}
    rewritten = route.forwarded(canonical.path)
    return {
        "route": f"{route.key} ({route.pattern.source})",
        "target_path": rewritten if rewritten != canonical.path else None,
    }


def rule_text(rule: Rule) -> str:
    parts = []
    for name, value in rule.conditions().items():
        if isinstance(value, tuple | list):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        parts.append(f"{name}: {value}")
    return "{" + ", ".join(parts) + "}"


def unknown_notes(
    policy: Policy, resource: CompiledResource, facts: Facts, decided: RuleRef | None
) -> tuple[str, ...]:
    """A note for each geo rule that saw an unplaced address, up to the one that decided: the
    decider, and the rules before it whose geo conditions did not hold (their others did)."""
    unplaced = _unplaced(facts)
    if not unplaced:
        return ()
    notes = []
    for rule in _geo_rules_reached(policy, resource, decided):
        model, is_decider = rule.ref.rule, rule.ref == decided
        seen = [kind for kind in _geo_kinds(model) if kind in unplaced]
        if not seen or not (is_decider or rule.matches_besides_geo(facts)):
            continue
        clauses = [f"{unplaced[kind]}, and {_reading(model, kind)}" for kind in seen]
        verb = "matched" if is_decider else "did not match"
        notes.append(f"{rule.ref.key} {verb}: " + "; ".join(clauses))
    return tuple(notes)


def _unplaced(facts: Facts) -> dict[str, str]:
    where = f"the databases do not place {facts.ip}"
    unplaced = {}
    if facts.country_code == UNKNOWN_COUNTRY:
        unplaced["country"] = f"country unknown ({where if facts.country is None else 'XX'})"
    if facts.asn_number == UNKNOWN_ASN:
        unplaced["asn"] = f"asn unknown ({where if facts.asn is None else 'AS0'})"
    return unplaced


def _geo_rules_reached(
    policy: Policy, resource: CompiledResource, decided: RuleRef | None
) -> Iterator[CompiledRule]:
    """Rules with geo conditions in evaluation order, up to and including the one that decided;
    only those are compiled, since a large policy has many rules and few of them geo."""
    for rule_set in (policy.global_rules, resource.rules):
        for order, model in enumerate(rule_set.model_rules):
            if model.uses_geo():
                yield rule_set.rule(order)
            if decided is not None and (rule_set.scope, order) == (decided.scope, decided.position):
                return


def _geo_kinds(rule: Rule) -> list[str]:
    country = rule.uses_country()
    return [kind for kind, used in (("country", country), ("asn", rule.asn is not None)) if used]


def _reading(rule: Rule, kind: str) -> str:
    """What the rule's conditions on `kind` make of an unknown, which is XX / AS0 to them."""
    if kind == "asn":
        assert rule.asn is not None
        named = UNKNOWN_ASN in rule.asn
        return f"asn: {_listed(rule.asn)} names " + ("it as 0" if named else "an unknown only as 0")
    readings = []
    if rule.country is not None:
        named = UNKNOWN_COUNTRY in rule.country
        what = "it as XX" if named else "an unknown only as XX"
        readings.append(f"country: {_listed(rule.country)} names {what}")
    if rule.country_not is not None:
        listed = _listed(rule.country_not)
        if UNKNOWN_COUNTRY in rule.country_not:
            readings.append(f"country_not: {listed} excludes it as XX")
        else:
            readings.append(f"an unknown is none of country_not: {listed}")
    if rule.region is not None:
        readings.append(f"region: {_regions(rule.region)} holds no unknown (XX is in no region)")
    if rule.region_not is not None:
        readings.append(f"an unknown is in none of region_not: {_regions(rule.region_not)}")
    return " and ".join(readings)


def _regions(codes: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"{code} {NAMES[code]}" for code in codes) + "]"


def _listed(values: tuple[object, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"
