import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from core.cli import app

POLICY = """\
version: 1
resources:
  grafana:
    host: grafana.example.com
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: allow, path: "/public/*"}
      - {action: deny, path: "/admin/*", not_cidr: [10.0.0.0/8]}
"""

runner = CliRunner()


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_check_accepts_good_files(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY)
    settings = write(tmp_path, "warren.yaml", "policy_file: policy.yaml\n")
    result = runner.invoke(app, ["check", str(policy), str(settings)])
    assert result.exit_code == 0, result.output
    assert f"{policy}: ok (1 resources, 2 rules)" in result.output
    assert f"{settings}: ok" in result.output


def test_check_reports_each_error_with_file_key_and_reason(tmp_path: Path) -> None:
    policy = write(
        tmp_path,
        "policy.yaml",
        POLICY.replace("10.0.0.0/8", "10.0.0.1/8").replace("port: 3000", "port: http"),
    )
    result = runner.invoke(app, ["check", str(policy)])
    assert result.exit_code == 1
    assert (
        f"error: {policy}:5: resources.grafana.targets[0].port: Input should be a valid integer"
        in result.output
    )
    assert (
        f"error: {policy}:8: resources.grafana.rules[1].not_cidr[0]: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"
        in result.output
    )


def test_check_settings_also_checks_their_policy(tmp_path: Path) -> None:
    write(tmp_path, "policy.yaml", "version: 1\nresources: {x: {host: a.example}}\n")
    settings = write(tmp_path, "warren.yaml", "policy_file: policy.yaml\n")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 1
    assert "resources.x.targets: Field required" in result.output


def test_explain(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY)
    args = ["explain", str(policy), "--host", "grafana.example.com", "--path", "/admin//x/."]
    result = runner.invoke(app, [*args, "--ip", "198.51.100.1"])
    assert result.exit_code == 0, result.output
    assert "path      /admin/x/ (canonical)" in result.output
    assert "rule      resources.grafana.rules[1]" in result.output
    assert (
        "outcome   denied by resources.grafana.rules[1]: the gateway answers 403" in result.output
    )
    as_json = json.loads(runner.invoke(app, [*args, "--ip", "10.0.0.1", "--json"]).output)
    assert as_json["status"] == "sign-in"


def test_explain_rejects_a_bad_address(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY)
    result = runner.invoke(app, ["explain", str(policy), "--host", "x", "--ip", "nope"])
    assert result.exit_code == 2


def test_reload_without_a_gateway_says_so(tmp_path: Path) -> None:
    settings = write(tmp_path, "warren.yaml", "state_dir: state\n")
    result = runner.invoke(app, ["reload", "--config", str(settings)])
    assert result.exit_code == 1
    assert "no gateway answers on" in result.output


def test_the_installed_command_has_every_component(tmp_path: Path) -> None:
    warren = Path(sys.executable).parent / "warren"
    result = subprocess.run([str(warren), "--help"], capture_output=True, text=True, check=True)
    for command in ("check", "explain", "reload", "gateway", "demo", "geodb"):
        assert command in result.stdout
    bad = write(tmp_path, "policy.yaml", "version: 1\nresources: {x: {host: a.example}}\n")
    result = subprocess.run([str(warren), "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "resources.x.targets: Field required" in result.stderr


GEO_POLICY = """\
version: 1
rules:
  - {action: deny, country: [KP]}
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: allow, country: GB, asn: AS1221}
      - {action: deny, country_not: [GB, SE]}
"""


def geo_settings(directory: Path, country_db: Path | str, asn_db: Path | str) -> Path:
    return write(
        directory,
        "warren.yaml",
        f"policy_file: policy.yaml\ngeoip:\n  country_db: {country_db}\n  asn_db: {asn_db}\n",
    )


def test_check_refuses_geo_rules_without_a_database_and_says_what_to_configure(
    tmp_path: Path,
) -> None:
    from tests.support.geoip import ASN, COUNTRY, geoip_file

    policy = write(tmp_path, "policy.yaml", GEO_POLICY)
    result = runner.invoke(app, ["check", str(policy)])
    assert result.exit_code == 1
    assert (
        f"error: {policy}:3: rules[0].country: country conditions need a country database: "
        "configure geoip.country_db in warren.yaml" in result.output
    )
    assert "resources.app.rules[0].asn: asn conditions need an ASN database" in result.output
    assert "resources.app.rules[1].country_not: country_not conditions need" in result.output
    settings = geo_settings(tmp_path, geoip_file(COUNTRY), geoip_file(ASN))
    assert runner.invoke(app, ["check", str(policy), "-c", str(settings)]).exit_code == 0
    assert runner.invoke(app, ["check", str(settings)]).exit_code == 0


def test_check_opens_the_databases_as_the_gateway_would(tmp_path: Path) -> None:
    from tests.support.geoip import CITY, COUNTRY, geoip_file

    write(tmp_path, "policy.yaml", GEO_POLICY)
    settings = geo_settings(tmp_path, geoip_file(COUNTRY), geoip_file(CITY))
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 1
    assert (
        f"error: {settings}:4: geoip.asn_db: {geoip_file(CITY)}: is a GeoIP2-City" in result.output
    )


def test_explain_looks_the_client_up_or_takes_what_it_is_given(tmp_path: Path) -> None:
    from tests.support.geoip import ASN, COUNTRY, geoip_file

    policy = write(tmp_path, "policy.yaml", GEO_POLICY)
    settings = geo_settings(tmp_path, geoip_file(COUNTRY), geoip_file(ASN))
    args = ["explain", str(policy), "--host", "app.example", "-c", str(settings)]
    sweden = runner.invoke(app, [*args, "--ip", "89.160.20.112"])
    assert sweden.exit_code == 0, sweden.output
    assert "country   SE from GeoLite2-Country-Test.mmdb (GeoLite2-Country" in sweden.output
    assert "asn       AS29518 Bredband2 AB from GeoLite2-ASN-Test.mmdb" in sweden.output
    assert "outcome   no rule matched; sign-in required" in sweden.output
    unknown = json.loads(runner.invoke(app, [*args, "--ip", "8.8.8.8", "--json"]).output)
    assert (unknown["country"], unknown["asn"], unknown["rule"]) == (None, None, "rules[0]")
    given = runner.invoke(app, [*args, "--ip", "8.8.8.8", "--country", "gb", "--asn", "1221"])
    assert "country   GB (given)" in given.output
    assert "asn       AS1221 (given)" in given.output
    assert "allowed by resources.app.rules[0] without sign-in" in given.output
    # Without databases, the values given are enough to decide geo rules.
    bare = ["explain", str(policy), "--host", "app.example", "--country", "DE"]
    denied = runner.invoke(app, bare)
    assert denied.exit_code == 0, denied.output
    assert "denied by resources.app.rules[1]" in denied.output
    bad = runner.invoke(app, [*bare[:-1], "Germany"])
    assert bad.exit_code == 2
    assert "'Germany' is not a two-letter ISO 3166 country code" in bad.output
