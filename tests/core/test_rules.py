from ipaddress import ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from core.ipsets import parse_address
from core.policy.model import Rule
from core.policy.rules import Facts, Outcome, RuleSet, evaluate


def rules(*specs: dict[str, object]) -> RuleSet:
    return RuleSet("rules", [Rule.parse(spec) for spec in specs])


def facts(
    ip: str = "192.0.2.1",
    path: str = "/",
    method: str = "GET",
    country: str | None = None,
    asn: int | None = None,
) -> Facts:
    return Facts(parse_address(ip), path, method, country, asn)


def test_first_match_decides_and_all_conditions_must_hold() -> None:
    rule_set = rules(
        {"action": "allow", "path": "/public/*"},
        {"action": "deny", "path": "/admin/*", "not_cidr": "10.0.0.0/8"},
        {"action": "pass", "method": ["GET", "HEAD"]},
        {"action": "deny"},
    )

    def decide(
        ip: str = "192.0.2.1", path: str = "/", method: str = "GET"
    ) -> tuple[Outcome, int | None]:
        verdict = evaluate([rule_set], facts(ip, path, method))
        return verdict.outcome, verdict.rule.position if verdict.rule else None

    assert decide(path="/public/x") == (Outcome.ALLOW, 0)
    assert decide(path="/admin/x", ip="8.8.8.8") == (Outcome.DENY, 1)
    assert decide(path="/admin/x", ip="10.1.2.3") == (Outcome.SIGN_IN, 2)
    assert decide(path="/admin/x", ip="10.1.2.3", method="POST") == (Outcome.DENY, 3)


def test_no_match_means_sign_in() -> None:
    verdict = evaluate([rules({"action": "deny", "path": "/x"})], facts(path="/y"))
    assert verdict.outcome is Outcome.SIGN_IN
    assert verdict.rule is None


def test_global_rules_come_before_the_resource_rules() -> None:
    global_rules = rules({"action": "deny", "cidr": "203.0.113.0/24"})
    resource_rules = rules({"action": "allow"})
    assert evaluate([global_rules, resource_rules], facts("203.0.113.7")).outcome is Outcome.DENY
    assert evaluate([global_rules, resource_rules], facts("198.51.100.7")).outcome is Outcome.ALLOW


def test_ip_and_ipv6_conditions() -> None:
    rule_set = rules(
        {"action": "deny", "ip": ["2001:db8::1", "192.0.2.9"]},
        {"action": "allow", "cidr": "2001:db8::/32"},
    )
    assert evaluate([rule_set], facts("2001:db8::1")).outcome is Outcome.DENY
    assert evaluate([rule_set], facts("2001:db8::2")).outcome is Outcome.ALLOW
    assert evaluate([rule_set], facts("192.0.2.9")).outcome is Outcome.DENY
    assert evaluate([rule_set], facts("::ffff:192.0.2.9")).outcome is Outcome.DENY


def test_an_unplaceable_address_never_allows_by_accident() -> None:
    # country_not: [DE] for an address with no known country: a deny rule fires, an allow does not.
    deny_outside = rules({"action": "deny", "country_not": "DE"}, {"action": "allow"})
    allow_outside = rules({"action": "allow", "country_not": "DE"})
    assert evaluate([deny_outside], facts(country=None)).outcome is Outcome.DENY
    assert evaluate([deny_outside], facts(country="DE")).outcome is Outcome.ALLOW
    assert evaluate([deny_outside], facts(country="FR")).outcome is Outcome.DENY
    assert evaluate([allow_outside], facts(country=None)).outcome is Outcome.SIGN_IN
    assert evaluate([allow_outside], facts(country="FR")).outcome is Outcome.ALLOW
    allow_asn = rules({"action": "allow", "asn": "AS64500"}, {"action": "deny", "asn": 64501})
    assert evaluate([allow_asn], facts(asn=64500)).outcome is Outcome.ALLOW
    assert evaluate([allow_asn], facts(asn=None)).outcome is Outcome.DENY


# --- The indexed lookup must agree with the obvious linear scan, rule for rule. ---

_NETWORKS = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.0.2.0/24",
    "0.0.0.0/0",
    "2001:db8::/32",
    "192.0.2.7/32",
]
_PATTERNS = [
    "/admin/*",
    "/admin",
    "/api/*/users",
    "/a/b*",
    "/*",
    "/**.php",
    "/x/y",
    "/v?/x",
    "/api/**",
]
_IPS = ["10.1.2.3", "10.9.9.9", "192.0.2.7", "198.51.100.1", "2001:db8::5", "2001:db9::1"]
_PATHS = [
    "/",
    "/admin",
    "/admin/x",
    "/api/v1/users",
    "/a/bc",
    "/a/x.php",
    "/x/y",
    "/v1/x",
    "/api",
    "/other",
]


@st.composite
def rule_specs(draw: st.DrawFn) -> dict[str, object]:
    spec: dict[str, object] = {"action": draw(st.sampled_from(["allow", "deny", "pass"]))}
    for key, values in (
        ("cidr", _NETWORKS),
        ("not_cidr", _NETWORKS),
        ("path", _PATTERNS),
        ("method", ["GET", "POST", "PUT"]),
        ("country", ["DE", "FR"]),
        ("country_not", ["DE"]),
        ("asn", [64500, 64501]),
    ):
        if draw(st.booleans()) and draw(st.booleans()):
            spec[key] = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
    return spec


@settings(max_examples=400, deadline=None)
@given(
    st.lists(rule_specs(), max_size=25),
    st.lists(
        st.tuples(
            st.sampled_from(_IPS),
            st.sampled_from(_PATHS),
            st.sampled_from(["GET", "POST"]),
            st.sampled_from([None, "DE", "FR", "SE"]),
            st.sampled_from([None, 64500, 64501, 64502]),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_index_agrees_with_a_linear_scan(specs: list[dict[str, object]], requests: list[tuple[str, str, str, str | None, int | None]]) -> None:  # fmt: skip
    rule_set = rules(*specs)
    for ip, path, method, country, asn in requests:
        request = facts(ip, path, method, country=country, asn=asn)
        linear = next((rule for rule in rule_set.rules if rule.matches(request)), None)
        assert rule_set.first_match(request) == linear


def test_networks_with_host_bits_are_refused_with_a_hint() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"did you mean 10\.0\.0\.0/8"):
        Rule.parse({"action": "deny", "cidr": "10.0.0.1/8"})
    assert Rule.parse({"action": "deny", "cidr": "10.0.0.0/8"}).cidr == (ip_network("10.0.0.0/8"),)
