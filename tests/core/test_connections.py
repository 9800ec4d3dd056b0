"""Raw TCP/UDP connections are decided by the same rules, with what a connection has."""

from ipaddress import ip_address

import pytest

from core.connections import admit_connection, connection_facts
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.problems import ConfigError

POLICY = """\
version: 1
rules:
  - {action: deny, cidr: 203.0.113.0/24}
  - {action: deny, path: "/*"}
  - {action: deny, path: "/**"}
  - {action: deny, path: "/"}
  - {action: deny, method: GET}
  - {action: allow, path: "/open/*"}
resources:
  open:
    protocol: tcp
    port: 2000
    auth: public
    targets: [{host: 127.0.0.1, port: 1}]
  members:
    protocol: udp
    port: 2001
    rules:
      - {action: deny, ip: 10.0.0.66}
      - {action: allow, cidr: 10.0.0.0/8}
      - {action: pass, cidr: 192.168.0.0/16}
    targets: [{host: 127.0.0.1, port: 1}]
"""


def decide(resource: str, ip: str) -> tuple[bool, str]:
    policy = parse_policy(POLICY, Capabilities())
    admission = admit_connection(
        policy, policy.resources[resource], connection_facts(ip_address(ip))
    )
    return admission.allowed, admission.reason


def test_path_and_method_rules_never_hold_for_a_connection() -> None:
    assert decide("open", "198.51.100.1") == (True, "public resource")


def test_ip_rules_decide_per_connection() -> None:
    assert decide("open", "203.0.113.9") == (False, "denied by rules[0]")
    assert decide("members", "10.0.0.66") == (False, "denied by resources.members.rules[0]")
    assert decide("members", "10.1.2.3") == (True, "allowed by resources.members.rules[1]")


def test_a_connection_that_would_need_sign_in_is_refused() -> None:
    allowed, reason = decide("members", "198.51.100.1")
    assert not allowed
    assert "no rule allows it" in reason
    allowed, reason = decide("members", "192.168.1.1")
    assert not allowed
    assert "passed on by resources.members.rules[2]" in reason


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("rules: [{action: allow, path: /x}]", "rules[0].path: a tcp connection has no path"),
        ("rules: [{action: deny, method: GET}]", "rules[0].method: a tcp connection has no method"),
        ("auth: {users: [alice]}", "auth: a tcp connection cannot sign in"),
        ("health: {path: /}", "health: health checks speak HTTP"),
    ],
)
def test_check_refuses_what_a_raw_resource_cannot_do(snippet: str, message: str) -> None:
    text = f"""\
version: 1
resources:
  game:
    protocol: tcp
    port: 25565
    targets: [{{host: 127.0.0.1, port: 25565}}]
    {snippet}
"""
    with pytest.raises(ConfigError) as raised:
        parse_policy(text, Capabilities())
    assert message in str(raised.value)


GEO_POLICY = """\
version: 1
rules: [{action: deny, country: [KP]}]
resources:
  game:
    protocol: tcp
    port: 25565
    auth: public
    targets: [{host: 127.0.0.1, port: 25565}]
    rules:
      - {action: deny, asn: [7018]}
      - {action: deny, country_not: [GB, XX]}
  lan:
    protocol: tcp
    port: 25566
    targets: [{host: 127.0.0.1, port: 25566}]
    rules: [{action: allow, country: [XX]}, {action: allow, country: [DE]}]
"""


@pytest.mark.parametrize(
    ("resource", "country", "asn", "expected"),
    [
        ("game", None, None, (True, "public resource")),  # no deny names the unknown
        ("game", "GB", None, (True, "public resource")),  # 81.2.69.142: GB, in no ASN database
        ("game", "GB", 7018, (False, "denied by resources.game.rules[0]")),
        ("game", "KP", None, (False, "denied by rules[0]")),
        ("game", "FR", None, (False, "denied by resources.game.rules[1]")),
        ("lan", None, None, (True, "allowed by resources.lan.rules[0]")),
        ("lan", "DE", None, (True, "allowed by resources.lan.rules[1]")),
    ],
)
def test_a_connection_the_databases_cannot_place_meets_two_valued_rules(
    resource: str, country: str | None, asn: int | None, expected: tuple[bool, str]
) -> None:
    policy = parse_policy(GEO_POLICY, Capabilities(country_db=True, asn_db=True))
    facts = connection_facts(ip_address("127.0.0.1"), country, asn)
    admission = admit_connection(policy, policy.resources[resource], facts)
    assert (admission.allowed, admission.reason) == expected


def test_a_known_country_no_rule_names_is_not_let_in() -> None:
    policy = parse_policy(GEO_POLICY, Capabilities(country_db=True, asn_db=True))
    facts = connection_facts(ip_address("127.0.0.1"), "FR")
    admission = admit_connection(policy, policy.resources["lan"], facts)
    assert not admission.allowed
    assert "no rule allows it" in admission.reason
