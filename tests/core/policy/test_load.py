from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.policy.check import Capabilities
from core.policy.load import load_policy, parse_policy
from core.policy.model import Rule
from core.problems import ConfigError

GOOD = """\
version: 1
trusted_proxies: [127.0.0.1/32, cloudflare]
rules:
  - {action: deny, cidr: [203.0.113.0/24]}
sites:
  home: {secret_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
resources:
  grafana:
    host: Grafana.Example.com
    targets:
      - {site: home, host: 127.0.0.1, port: 3000}
    balance: least_conn
    health: {path: /api/health, interval: 10s}
    auth: {users: [alice], groups: [ops]}
    rules:
      - {action: allow, path: "/public/*"}
      - {action: deny, path: "/admin/*", not_cidr: [10.0.0.0/8]}
      - {action: pass, method: GET}
  wiki:
    host: ["wiki.example.com", "*.wiki.example.com"]
    auth: public
    targets: [{host: 127.0.0.1, port: 3001}]
"""


NO_GEO = Capabilities()


def problems(text: str, capabilities: Capabilities = NO_GEO) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text, capabilities, Path("policy.yaml"))
    return [str(problem) for problem in caught.value.problems]


def test_a_good_policy_compiles() -> None:
    policy = parse_policy(GOOD, Capabilities())
    assert set(policy.resources) == {"grafana", "wiki"}
    assert policy.rule_count == 4
    assert policy.resource_for("grafana.example.com:443") is policy.resources["grafana"]
    assert policy.resource_for("a.wiki.example.com") is policy.resources["wiki"]
    assert policy.resources["wiki"].public


def test_errors_name_file_line_key_path_and_reason() -> None:
    text = GOOD.replace("not_cidr: [10.0.0.0/8]", "not_cidr: [10.0.0.0/33]")
    assert problems(text) == [
        "policy.yaml:17: resources.grafana.rules[1].not_cidr[0]: '10.0.0.0/33' is not an IP network"
    ]


def test_unknown_keys_are_errors_not_ignored() -> None:
    (problem,) = problems(GOOD.replace("balance: least_conn", "balanse: least_conn"))
    assert problem.startswith("policy.yaml:12: resources.grafana.balanse: unknown key")


def test_duplicate_keys_are_errors() -> None:
    text = GOOD + "  grafana:\n    host: x.example.com\n    targets: [{host: 127.0.0.1, port: 1}]\n"
    assert problems(text) == ["policy.yaml:23: not valid YAML: duplicate mapping key: 'grafana'"]


def test_yaml_1_2_keeps_norway_a_country() -> None:
    text = GOOD.replace("action: pass, method: GET", "action: pass, country: [NO, DE]")
    policy = parse_policy(text, Capabilities(country_db=True))
    assert policy.resources["grafana"].model.rules[2].country == ("NO", "DE")


def test_cross_resource_problems() -> None:
    text = GOOD.replace('wiki.example.com", ', 'grafana.example.com", ').replace(
        "site: home", "site: cottage"
    )
    assert problems(text) == [
        "policy.yaml:20: resources.wiki.host[0]: grafana.example.com is already the host of resource 'grafana'",
        "policy.yaml:11: resources.grafana.targets[0].site: no site named 'cottage' under sites",
    ]


def test_geo_conditions_need_a_database() -> None:
    text = GOOD.replace("action: pass, method: GET", "action: pass, country: [DE, fr]")
    (problem,) = problems(text)
    assert (
        "resources.grafana.rules[2].country: country conditions need a country database: "
        "configure geoip.country_db in warren.yaml" in problem
    )
    policy = parse_policy(text, Capabilities(country_db=True))
    assert policy.rule_count == 4
    assert (policy.uses_country, policy.uses_asn) == (True, False)
    asn = GOOD.replace("action: pass, method: GET", "action: deny, asn: AS64500")
    (problem,) = problems(asn, Capabilities(country_db=True))
    assert "asn conditions need an ASN database: configure geoip.asn_db" in problem
    assert parse_policy(asn, Capabilities(asn_db=True)).uses_asn
    region = GOOD.replace("action: pass, method: GET", "action: deny, region_not: [150]")
    (problem,) = problems(region)
    assert "region_not conditions need a country database: configure geoip.country_db" in problem
    assert parse_policy(region, Capabilities(country_db=True)).uses_country
    assert not parse_policy(GOOD, NO_GEO).uses_geo


@pytest.mark.parametrize(
    ("fragment", "replacement", "message"),
    [
        ("version: 1", "version: 2", "version: Input should be 1"),
        (
            "action: allow,",
            "action: permit,",
            "rules[0].action: Input should be 'allow', 'deny' or 'pass'",
        ),
        ('path: "/public/*"', 'path: "public/*"', "a path pattern starts with /"),
        ("method: GET", "method: 'GET /'", "is not an HTTP method"),
        ("port: 3001", "port: 70000", "port: Input should be less than or equal to 65535"),
        ("host: Grafana.Example.com", "host: gra_fana.example.com", "is not a host name"),
        ("auth: public", "auth: everyone", "auth: Input should be 'public'"),
        ("[127.0.0.1/32, cloudflare]", "[localhost]", "'localhost' is not an IP network"),
        ("cidr: [203.0.113.0/24]", "cidr: []", "an empty list matches nothing"),
        ("host: 127.0.0.1, port: 3001", "host: '127.0.0.1:3001', port: 3001", "the port goes in"),
        ("host: 127.0.0.1, port: 3001", "host: '[wiki]', port: 3001", "nor an IP address"),
        ("host: 127.0.0.1, port: 3001", "host: 'http://wiki', port: 3001", "is not a host name"),
        ("port: 3001}", "port: 3001, proxy_protocol: v3}", "Input should be 'v1' or 'v2'"),
    ],
)
def test_field_errors(fragment: str, replacement: str, message: str) -> None:
    assert fragment in GOOD
    found = problems(GOOD.replace(fragment, replacement))
    assert any(message in problem for problem in found), found


@pytest.mark.parametrize(
    ("written", "host", "url"),
    [
        ("fd00::5", "fd00::5", "http://[fd00::5]:3001"),
        ("'[fd00:0:0::5]'", "fd00::5", "http://[fd00::5]:3001"),
        ("'[::1]'", "::1", "http://[::1]:3001"),
        ("10.0.0.5", "10.0.0.5", "http://10.0.0.5:3001"),
        ("app_1.internal", "app_1.internal", "http://app_1.internal:3001"),  # as Docker names it
    ],
)
def test_a_target_host_is_a_name_or_an_address_in_one_form(
    written: str, host: str, url: str
) -> None:
    text = GOOD.replace("host: 127.0.0.1, port: 3001", f"host: {written}, port: 3001")
    (target,) = parse_policy(text, NO_GEO).resources["wiki"].targets
    assert (target.host, target.url) == (host, url)


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems("version: [1\n")[0].startswith("policy.yaml:")
    assert "not valid YAML" in problems("version: [1\n")[0]
    assert "must be a mapping" in problems("- 1\n")[0]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml", Capabilities())


# Rules' networks take a fast parser when written canonically; it must agree with ipaddress on
# every text, canonical or not (a network it got wrong would let in or shut out the wrong people).
_NETWORK_TEXT = st.one_of(
    st.builds(
        lambda octets, prefix: f"{'.'.join(map(str, octets))}/{prefix}",
        st.lists(st.integers(0, 255), min_size=4, max_size=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda number, prefix: f"{IPv4Address(number >> (32 - prefix) << (32 - prefix))}/{prefix}",
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    ),
    st.from_regex(r"\A[0-9x.]{1,16}/[0-9]{1,3}\Z"),
    st.sampled_from(["1.2.3/24", "01.2.3.4/32", "1.2.3.4/033", "0x7f.0.0.1/32", "10.0.0.0/\uff18"]),
)


@given(_NETWORK_TEXT)
def test_networks_parse_exactly_as_ipaddress_does(text: str) -> None:
    try:
        expected: IPv4Network | IPv6Network | str = ip_network(text, strict=True)
    except ValueError:
        expected = "refused"
    try:
        parsed = Rule.parse({"action": "deny", "cidr": text}).cidr
    except ValidationError:
        parsed = None
    assert (parsed[0] if parsed else "refused") == expected
