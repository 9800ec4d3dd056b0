"""Ordered rules, first match decides, without scanning every rule.

Each rule is filed under one index by its most selective condition: its networks (a prefix map),
its exact paths (a dict), the literal directory its path globs lie under (a dict probed once per
ancestor of the request path), its countries (a region's: the countries it holds) or ASNs
(dicts). Rules with none of those (say, only `method`, `not_cidr`, `country_not` or
`region_not`) go on a short list checked in order. A lookup gathers the candidate lists, walks
them merged in rule order, and stops at the first rule whose every condition holds.

Geo conditions are two-valued, as Cloudflare's are: an address the databases cannot place has
the country XX and the AS number 0 (core.policy.model). So `country: [KP]` and `asn: [7018]`
never match it, `country_not: [DE]` does (it is not DE), and a rule that means the unknown names
it: `country: [XX]`, `country_not: [DE, XX]`, `asn: [0]`.
"""

from collections.abc import Iterable, Sequence
from enum import StrEnum
from heapq import merge
from typing import NamedTuple

from core.ipsets import IPAddress, IPNetwork, IpSet, PrefixMap
from core.paths import PathPattern, ancestors
from core.policy.model import UNKNOWN_ASN, UNKNOWN_COUNTRY, Rule
from core.regions import countries_in


class Outcome(StrEnum):
    ALLOW = "allow"  # no sign-in needed
    DENY = "deny"
    SIGN_IN = "sign_in"  # `pass`, or no rule matched


class Facts(NamedTuple):
    ip: IPAddress
    path: str  # the canonical match path (core.paths.CanonicalPath.match)
    method: str
    country: str | None = None  # None: unknown, which rules read as XX
    asn: int | None = None  # None: unknown, which rules read as AS0

    @property
    def country_code(self) -> str:
        return self.country or UNKNOWN_COUNTRY

    @property
    def asn_number(self) -> int:
        return UNKNOWN_ASN if self.asn is None else self.asn


class RuleRef(NamedTuple):
    scope: str  # "rules" (global) or "resources.NAME.rules"
    position: int
    rule: Rule

    @property
    def key(self) -> str:
        return f"{self.scope}[{self.position}]"


class Verdict(NamedTuple):
    outcome: Outcome
    rule: RuleRef | None


_ACTION_OUTCOME = {"allow": Outcome.ALLOW, "deny": Outcome.DENY, "pass": Outcome.SIGN_IN}


class CompiledRule:
    """A rule ready to match: networks as IP sets, methods and places as sets."""

    __slots__ = (
        "asns",
        "cidr",
        "countries",
        "countries_not",
        "has_geo",
        "ip",
        "methods",
        "not_cidr",
        "order",
        "outcome",
        "paths",
        "ref",
        "regions",
        "regions_not",
    )

    def __init__(self, order: int, ref: RuleRef) -> None:
        rule = ref.rule
        self.order = order
        self.ref = ref
        self.outcome = _ACTION_OUTCOME[rule.action]
        self.cidr = IpSet(rule.cidr) if rule.cidr is not None else None
        self.not_cidr = IpSet(rule.not_cidr) if rule.not_cidr is not None else None
        self.ip = IpSet(rule.ip) if rule.ip is not None else None
        self.paths: tuple[PathPattern, ...] | None = rule.path
        self.methods = frozenset(rule.method) if rule.method is not None else None
        self.countries = frozenset(rule.country) if rule.country is not None else None
        self.countries_not = frozenset(rule.country_not) if rule.country_not is not None else None
        # A region is the countries it holds: XX (unknown) is in none of them.
        self.regions = countries_in(rule.region) if rule.region is not None else None
        self.regions_not = countries_in(rule.region_not) if rule.region_not is not None else None
        self.asns = frozenset(rule.asn) if rule.asn is not None else None
        self.has_geo = rule.uses_geo()

    def __repr__(self) -> str:
        return f"CompiledRule({self.ref.key})"

    def matches(self, facts: Facts) -> bool:
        return self.matches_besides_geo(facts) and (not self.has_geo or self.geo_matches(facts))

    def matches_besides_geo(self, facts: Facts) -> bool:
        if self.cidr is not None and facts.ip not in self.cidr:
            return False
        if self.ip is not None and facts.ip not in self.ip:
            return False
        if self.not_cidr is not None and facts.ip in self.not_cidr:
            return False
        if self.methods is not None and facts.method not in self.methods:
            return False
        return self.paths is None or any(p.matches(facts.path) for p in self.paths)

    def geo_matches(self, facts: Facts) -> bool:
        # Unknown is a value like any other (XX, AS0), so each condition is plainly true or false.
        if self.countries is not None and facts.country_code not in self.countries:
            return False
        if self.countries_not is not None and facts.country_code in self.countries_not:
            return False
        if self.regions is not None and facts.country_code not in self.regions:
            return False
        if self.regions_not is not None and facts.country_code in self.regions_not:
            return False
        return self.asns is None or facts.asn_number in self.asns


class RuleSet:
    __slots__ = (
        "_by_asn",
        "_by_country",
        "_by_ip",
        "_by_path_dir",
        "_by_path_exact",
        "_compiled",
        "_rest",
        "_rules",
        "scope",
    )

    def __init__(self, scope: str, rules: Sequence[Rule]) -> None:
        self.scope = scope  # "rules" (global) or "resources.NAME.rules"
        self._rules = tuple(rules)
        # Matchers are built on first use: a reload of a large policy then pays only for the
        # index, and a rule no request ever reaches never costs more.
        self._compiled: list[CompiledRule | None] = [None] * len(self._rules)
        ip_entries: list[tuple[IPNetwork, int]] = []
        path_exact: dict[str, list[int]] = {}
        path_dir: dict[str, list[int]] = {}
        by_country: dict[str, list[int]] = {}
        by_asn: dict[int, list[int]] = {}
        rest: list[int] = []
        for order, rule in enumerate(self._rules):
            networks = rule.cidr or rule.ip
            if networks is not None:
                ip_entries.extend((network, order) for network in networks)
            elif rule.path is not None:
                for pattern in rule.path:
                    table = path_exact if pattern.kind == "exact" else path_dir
                    table.setdefault(pattern.key, []).append(order)
            elif rule.country is not None:
                for country in rule.country:  # XX among them: filed where unknowns look
                    by_country.setdefault(country, []).append(order)
            elif rule.region is not None:
                for country in countries_in(rule.region):
                    by_country.setdefault(country, []).append(order)
            elif rule.asn is not None:
                for asn in rule.asn:
                    by_asn.setdefault(asn, []).append(order)
            else:
                rest.append(order)
        self._by_ip = PrefixMap(ip_entries)
        self._by_path_exact = _freeze(path_exact)
        self._by_path_dir = _freeze(path_dir)
        self._by_country = _freeze(by_country)
        self._by_asn = _freeze(by_asn)
        self._rest = tuple(rest)

    def __len__(self) -> int:
        return len(self._rules)

    def rule(self, order: int) -> CompiledRule:
        compiled = self._compiled[order]
        if compiled is None:  # on the event loop; a race would only build it twice
            ref = RuleRef(self.scope, order, self._rules[order])
            compiled = self._compiled[order] = CompiledRule(order, ref)
        return compiled

    @property
    def model_rules(self) -> tuple[Rule, ...]:
        """The rules as the policy file has them, in order."""
        return self._rules

    def first_match(self, facts: Facts) -> CompiledRule | None:
        candidates = self._candidates(facts)
        if not candidates:  # the common case for a resource without rules
            return None
        compiled = self._compiled
        if len(candidates) == 1:
            ordered: Iterable[int] = candidates[0]
        else:
            ordered = merge(*candidates)
        for order in ordered:
            rule = compiled[order] or self.rule(order)
            if rule.matches(facts):
                return rule
        return None

    def _candidates(self, facts: Facts) -> list[Sequence[int]]:
        found: list[Sequence[int]] = []
        by_ip = self._by_ip.values_containing(facts.ip)
        if by_ip:
            by_ip.sort()
            found.append(by_ip)
        exact = self._by_path_exact.get(facts.path)
        if exact:
            found.append(exact)
        if self._by_path_dir:
            for key in ancestors(facts.path):
                under = self._by_path_dir.get(key)
                if under:
                    found.append(under)
        # Facts.country_code and .asn_number spelled out: this runs for every request.
        by_country, by_asn = self._by_country, self._by_asn
        if by_country and (country := by_country.get(facts.country or UNKNOWN_COUNTRY)):
            found.append(country)
        if by_asn and (asn := by_asn.get(UNKNOWN_ASN if facts.asn is None else facts.asn)):
            found.append(asn)
        if self._rest:
            found.append(self._rest)
        return found


def _freeze[K](table: dict[K, list[int]]) -> dict[K, tuple[int, ...]]:
    return {key: tuple(values) for key, values in table.items()}


def evaluate(rule_sets: Sequence[RuleSet], facts: Facts) -> Verdict:
    """Global rules first, then the resource's; the first rule that matches decides."""
    for rule_set in rule_sets:
        rule = rule_set.first_match(facts)
        if rule is not None:
            return Verdict(rule.outcome, rule.ref)
    return Verdict(Outcome.SIGN_IN, None)
