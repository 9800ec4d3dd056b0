from collections.abc import Mapping
from ipaddress import ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from core.ipsets import parse_address
from core.policy.model import Rule
from core.policy.rules import Facts, Outcome, RuleSet, evaluate


def rules(*specs: Mapping[str, object]) -> RuleSet:
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


def decide(*specs: Mapping[str, object], country: str | None = None, asn: int | None = None) -> str:
    return evaluate([rules(*specs)], facts(country=country, asn=asn)).outcome.value


# An address the databases cannot place (country None, asn None) is neither turned away nor let in
# by a condition that does not name the unknown: geo conditions are two-valued, as Cloudflare's.


def test_a_deny_on_asns_does_not_refuse_an_address_without_a_known_asn() -> None:
    # 81.2.69.142: GB in MaxMind's test Country database, absent from the ASN one.
    assert decide({"action": "deny", "asn": [7018]}, country="GB") == "sign_in"
    assert decide({"action": "deny", "asn": [7018]}, country="GB", asn=7018) == "deny"


def test_a_deny_on_countries_does_not_refuse_loopback_or_the_lan() -> None:
    assert decide({"action": "deny", "country": ["KP"]}) == "sign_in"
    assert decide({"action": "deny", "country": ["KP"]}, country="KP") == "deny"


def test_country_not_still_refuses_an_unknown() -> None:
    deny_outside = ({"action": "deny", "country_not": "DE"}, {"action": "allow"})
    assert decide(*deny_outside) == "deny"
    assert decide(*deny_outside, country="FR") == "deny"
    assert decide(*deny_outside, country="DE") == "allow"


def test_an_allow_on_countries_never_admits_an_unknown() -> None:
    assert decide({"action": "allow", "country": ["DE"]}) == "sign_in"
    assert decide({"action": "allow", "country": ["DE"]}, country="DE") == "allow"
    assert decide({"action": "allow", "asn": [3320]}) == "sign_in"


def test_xx_names_an_unknown_country() -> None:
    assert decide({"action": "allow", "country": ["XX"]}) == "allow"
    assert decide({"action": "allow", "country": ["XX"]}, country="FR") == "sign_in"
    # A database that itself answers XX means the same.
    assert decide({"action": "allow", "country": ["XX"]}, country="XX") == "allow"


def test_xx_in_country_not_leaves_unknowns_alone() -> None:
    known_outside = {"action": "deny", "country_not": ["DE", "XX"]}
    assert decide(known_outside) == "sign_in"
    assert decide(known_outside, country="FR") == "deny"
    assert decide(known_outside, country="DE") == "sign_in"
    any_known = {"action": "allow", "country_not": ["XX"]}
    assert decide(any_known, country="FR") == "allow"
    assert decide(any_known) == "sign_in"


def test_a_region_holds_its_countries_and_never_an_unknown() -> None:
    europe_only = ({"action": "deny", "region_not": [150]}, {"action": "allow"})
    assert decide(*europe_only, country="SE") == "allow"
    assert decide(*europe_only, country="US") == "deny"
    assert decide(*europe_only) == "deny"  # unknown: in no region, so not in Europe
    americas = {"action": "allow", "region": ["019", 154]}
    assert decide(americas, country="BR") == "allow"
    assert decide(americas, country="NO") == "allow"
    assert decide(americas, country="DE") == "sign_in"
    assert decide(americas) == "sign_in"
    # With a country condition too, both must hold.
    assert decide({"action": "deny", "region": [150], "country": ["DE"]}, country="FR") == "sign_in"
    assert decide({"action": "deny", "region": [150], "country": ["DE"]}, country="DE") == "deny"


def test_region_rules_keep_their_place_in_the_order() -> None:
    rule_set = rules(
        {"action": "pass", "country": "FR"},
        {"action": "deny", "region": 150},
        {"action": "allow", "region_not": "002"},
    )
    assert evaluate([rule_set], facts(country="FR")).outcome is Outcome.SIGN_IN
    assert evaluate([rule_set], facts(country="IT")).outcome is Outcome.DENY
    assert evaluate([rule_set], facts(country="JP")).outcome is Outcome.ALLOW
    assert evaluate([rule_set], facts(country="KE")).outcome is Outcome.SIGN_IN


def test_as0_names_an_unknown_asn() -> None:
    assert decide({"action": "deny", "asn": ["AS0"]}) == "deny"
    assert decide({"action": "deny", "asn": [0]}, asn=64500) == "sign_in"
    assert decide({"action": "deny", "asn": [0, 64500]}, asn=64500) == "deny"


def test_every_condition_of_a_geo_rule_must_hold() -> None:
    both = {"action": "deny", "country": ["XX"], "asn": [64500]}
    assert decide(both, asn=64500) == "deny"
    assert decide(both) == "sign_in"
    assert decide(both, country="DE", asn=64500) == "sign_in"


def test_country_codes_are_checked_and_xx_is_one() -> None:
    import pytest
    from pydantic import ValidationError

    from core.policy.check import Capabilities
    from core.policy.load import parse_policy
    from core.problems import ConfigError

    assert Rule.parse({"action": "deny", "country": ["xx", "de"]}).country == ("XX", "DE")
    assert Rule.parse({"action": "deny", "country_not": "XX"}).country_not == ("XX",)
    assert Rule.parse({"action": "deny", "asn": "AS0"}).asn == (0,)
    with pytest.raises(ValidationError, match="an address the databases cannot place is XX"):
        Rule.parse({"action": "deny", "country": "ZZ"})
    for bad in ("DEU", "D1", "", 49):
        with pytest.raises(ValidationError, match="is not a two-letter ISO 3166 country code"):
            Rule.parse({"action": "deny", "country": bad})
    text = "version: 1\nrules: [{action: deny, country: [XX], country_not: [XX]}]\n"
    assert parse_policy(text, Capabilities(country_db=True)).uses_country
    with pytest.raises(ConfigError, match=r"rules\[0\]\.country\[0\]: .*ZZ is no country"):
        parse_policy("version: 1\nrules: [{action: deny, country: ZZ}]\n", Capabilities(True))


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
        ("country", ["DE", "FR", "XX"]),
        ("country_not", ["DE", "XX"]),
        ("region", ["150", "154", "019"]),
        ("region_not", ["155", "002"]),
        ("asn", [64500, 64501, 0]),
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
            st.sampled_from([None, "DE", "FR", "SE", "XX", "US", "KE"]),
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
        every = (rule_set.rule(order) for order in range(len(rule_set)))
        linear = next((rule for rule in every if rule.matches(request)), None)
        assert rule_set.first_match(request) == linear


def test_networks_with_host_bits_are_refused_with_a_hint() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"did you mean 10\.0\.0\.0/8"):
        Rule.parse({"action": "deny", "cidr": "10.0.0.1/8"})
    assert Rule.parse({"action": "deny", "cidr": "10.0.0.0/8"}).cidr == (ip_network("10.0.0.0/8"),)
