from pathlib import Path

from core.explain import explain
from core.policy.check import Capabilities
from core.policy.load import parse_policy

POLICY = parse_policy(
    """
version: 1
rules: [{action: deny, cidr: 203.0.113.0/24}]
resources:
  grafana:
    host: grafana.example.com
    targets: [{host: 127.0.0.1, port: 3000}]
    auth: {groups: [ops]}
    rules:
      - {action: allow, path: "/public/*"}
      - {action: deny, path: "/admin/*", not_cidr: [10.0.0.0/8]}
  wiki:
    host: wiki.example.com
    auth: public
    targets: [{host: 127.0.0.1, port: 3001}]
""",
    Capabilities(),
)


def test_explains_each_outcome() -> None:
    admin = explain(POLICY, "grafana.example.com", "/admin/users", "198.51.100.1", "GET")
    assert (admin.status, admin.http_status, admin.rule) == (
        "deny",
        403,
        "resources.grafana.rules[1]",
    )
    assert admin.rule_text == "{action: deny, not_cidr: [10.0.0.0/8], path: [/admin/*]}"

    inside = explain(POLICY, "grafana.example.com", "/admin/users", "10.0.0.1", "GET")
    assert inside.status == "sign-in"
    assert inside.summary == "no rule matched; sign-in required (group ops)"

    public = explain(POLICY, "grafana.example.com", "/public/a/../b", "10.0.0.1", "GET")
    assert (public.status, public.path) == ("forward", "/public/b")

    assert explain(POLICY, "wiki.example.com", "/", "10.0.0.1", "GET").status == "forward"
    assert explain(POLICY, "wiki.example.com", "/", "203.0.113.9", "GET").rule == "rules[0]"
    assert explain(POLICY, "nope.example.com", "/", "10.0.0.1", "GET").http_status == 404
    assert explain(POLICY, "wiki.example.com", "/%2e%2e/", "10.0.0.1", "GET").http_status == 400


GEO_POLICY = parse_policy(
    """
version: 1
rules:
  - {action: deny, country: [KP]}
  - {action: deny, asn: [7018], path: /admin/*}
resources:
  eu:
    host: eu.example.com
    auth: public
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: allow, country: [DE, XX], asn: [0]}
      - {action: deny, country_not: [GB, SE]}
""",
    Capabilities(country_db=True, asn_db=True),
)


def explain_geo(ip: str, country: str | None, asn: int | None, path: str = "/") -> tuple[str, ...]:
    return explain(GEO_POLICY, "eu.example.com", path, ip, "GET", country, asn).notes


def test_explain_says_when_a_skipped_geo_rule_saw_an_unknown() -> None:
    # Loopback, in no database, asking for /admin: neither global deny names the unknown.
    result = explain(GEO_POLICY, "eu.example.com", "/admin/x", "127.0.0.1", "GET", None, 64500)
    assert result.rule == "resources.eu.rules[1]"
    assert result.notes == (
        "rules[0] did not match: country unknown (the databases do not place 127.0.0.1), and "
        "country: [KP] names an unknown only as XX",
        "resources.eu.rules[0] did not match: country unknown (the databases do not place "
        "127.0.0.1), and country: [DE, XX] names it as XX",
        "resources.eu.rules[1] matched: country unknown (the databases do not place 127.0.0.1), "
        "and an unknown is none of country_not: [GB, SE]",
    )


def test_explain_says_when_the_deciding_rule_matched_an_unknown() -> None:
    notes = explain_geo("198.51.100.1", None, None)
    assert notes[-1] == (
        "resources.eu.rules[0] matched: country unknown (the databases do not place "
        "198.51.100.1), and country: [DE, XX] names it as XX; asn unknown (the databases do not "
        "place 198.51.100.1), and asn: [0] names it as 0"
    )
    # A rule whose other conditions do not hold was not kept from matching by the unknown.
    assert not any(note.startswith("rules[1]") for note in notes)


def test_explain_adds_no_note_when_the_place_is_known() -> None:
    assert explain_geo("81.2.69.142", "GB", 2856) == ()
    # Given as XX / AS0 ("what if it were unknown"), the note says so.
    assert explain_geo("81.2.69.142", "XX", 0)[-1].startswith(
        "resources.eu.rules[0] matched: country unknown (XX)"
    )
    # Only the kinds a rule looks at: a known country, an unknown ASN, a country-only rule.
    assert explain_geo("81.2.69.142", "FR", None) == (
        "resources.eu.rules[0] did not match: asn unknown (the databases do not place "
        "81.2.69.142), and asn: [0] names it as 0",
    )


def test_the_command_line_prints_the_notes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from core.cli import app

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules: [{action: deny, country: [KP]}]\nresources:\n"
        "  app: {host: app.example, auth: public, targets: [{host: 127.0.0.1, port: 1}]}\n"
    )
    args = ["explain", str(policy), "--host", "app.example", "--ip", "127.0.0.1"]
    result = CliRunner().invoke(app, [*args, "--country", "XX"])
    assert result.exit_code == 0, result.output
    assert (
        "note      rules[0] did not match: country unknown (XX), and country: [KP] names an "
        "unknown only as XX\n" in result.output
    )
    assert "outcome   no rule matched; the resource is public (auth: public)" in result.output


def test_explain_says_an_unknown_is_in_no_region() -> None:
    policy = parse_policy(
        """
version: 1
resources:
  wiki:
    host: wiki.example.com
    auth: public
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: allow, region: [154]}
      - {action: deny, region_not: [150]}
""",
        Capabilities(country_db=True),
    )
    unknown = explain(policy, "wiki.example.com", "/", "127.0.0.1", "GET")
    assert (unknown.status, unknown.rule) == ("deny", "resources.wiki.rules[1]")
    assert unknown.rule_text == "{action: deny, region_not: [150]}"
    assert unknown.notes == (
        "resources.wiki.rules[0] did not match: country unknown (the databases do not place "
        "127.0.0.1), and region: [154 Northern Europe] holds no unknown (XX is in no region)",
        "resources.wiki.rules[1] matched: country unknown (the databases do not place "
        "127.0.0.1), and an unknown is in none of region_not: [150 Europe]",
    )
    sweden = explain(policy, "wiki.example.com", "/", "89.160.20.112", "GET", "SE")
    assert (sweden.status, sweden.rule, sweden.notes) == ("forward", "resources.wiki.rules[0]", ())
    france = explain(policy, "wiki.example.com", "/", "192.0.2.10", "GET", "FR")
    assert (france.status, france.rule) == ("forward", None)
