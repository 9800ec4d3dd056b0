import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from core.cli import app
from demo import processes
from tests.support.gateway import GatewayFactory
from tests.support.waiting import eventually

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
    assert (
        "resources.x: a resource needs targets (an http resource: targets or routes)"
        in result.output
    )


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
    assert (
        "resources.x: a resource needs targets (an http resource: targets or routes)"
        in result.stderr
    )


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
    # Unknown is not KP, but it is none of GB, SE: the resource's country_not turns it away.
    assert (unknown["country"], unknown["asn"], unknown["rule"]) == (
        None,
        None,
        "resources.app.rules[1]",
    )
    assert unknown["notes"][0].startswith("rules[0] did not match: country unknown")
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


def test_check_opens_the_certificates_as_the_gateway_would(tmp_path: Path) -> None:
    from tests.support.tls import LocalCa

    ca = LocalCa.fresh()
    write(tmp_path, "policy.yaml", POLICY)
    ca.issue(["grafana.example.com"], tmp_path / "good.pem")
    settings = write(tmp_path, "warren.yaml", "policy_file: policy.yaml\ncerts: [good.pem]\n")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 0, result.output
    assert "1 certificates" in result.output

    ca.issue(["other.example.com"], tmp_path / "other.pem")
    ca.issue(["grafana.example.com"], tmp_path / "old.pem", days=-1)
    ca.issue(["grafana.example.com"], tmp_path / "nokey.pem", key_path=tmp_path / "k.pem")
    certs = "certs: [other.pem, old.pem, nokey.pem, missing.pem]\n"
    settings = write(tmp_path, "warren.yaml", f"policy_file: policy.yaml\n{certs}")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 1
    assert f"certs[1]: {tmp_path / 'old.pem'}: expired on" in result.output
    assert f"certs[2]: {tmp_path / 'nokey.pem'}: holds no private key" in result.output
    assert f"certs[3]: {tmp_path / 'missing.pem'}: cannot be read" in result.output

    settings = write(tmp_path, "warren.yaml", "policy_file: policy.yaml\ncerts: [other.pem]\n")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 1
    assert "certs: no certificate here is for grafana.example.com" in result.output

    acme = "acme: {email: admin@example.com}\n"
    settings = write(
        tmp_path, "warren.yaml", f"policy_file: policy.yaml\ncerts: [other.pem]\n{acme}"
    )
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 0, result.output  # ACME orders one for grafana.example.com


def test_check_refuses_a_raw_resource_on_a_port_the_node_holds(tmp_path: Path) -> None:
    raw = """\
version: 1
resources:
  web: {protocol: tcp, port: 8443, targets: [{host: 127.0.0.1, port: 1}]}
  wg: {protocol: udp, port: 51820, targets: [{host: 127.0.0.1, port: 1}]}
  ok: {protocol: udp, port: 8443, targets: [{host: 127.0.0.1, port: 1}]}
"""
    write(tmp_path, "policy.yaml", raw)
    node = "policy_file: policy.yaml\nlisten: 0.0.0.0:8443\nhttp_listen: 0.0.0.0:8080\n"
    settings = write(tmp_path, "warren.yaml", node)
    write(
        tmp_path,
        "policy.yaml",
        raw + "  plain: {protocol: tcp, port: 8080, targets: [{host: 127.0.0.1, port: 1}]}\n",
    )
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 1
    assert "resources.web.port: tcp port 8443 is the node's own (listen in warren.yaml)" in (
        result.output
    )
    assert "resources.wg.port: udp port 51820 is the node's own (wireguard.listen_port" in (
        result.output
    )
    assert "resources.plain.port: tcp port 8080 is the node's own (http_listen" in result.output
    assert "resources.ok" not in result.output


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"warren {version('warren')}\n"


def test_health_says_up_while_the_gateway_answers_and_why_not_after(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(POLICY)
    ask = [sys.executable, "-m", "core", "health", "gateway", "--config", str(gateway.config)]

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(ask, capture_output=True, text=True, check=False)

    eventually(lambda: health().returncode == 0)  # its socket may come a moment after the port
    up = health()
    assert (up.returncode, up.stdout) == (0, "gateway: up\n"), up.stderr
    processes.stop(gateway.process)
    down = health()
    assert down.returncode == 1
    socket = gateway.directory / "state" / "gateway.sock"
    assert down.stderr.startswith(f"error: gateway: no answer on {socket}: "), down.stderr
    assert "Traceback" not in down.stderr
