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
    for command in ("check", "explain", "reload", "gateway", "demo"):
        assert command in result.stdout
    bad = write(tmp_path, "policy.yaml", "version: 1\nresources: {x: {host: a.example}}\n")
    result = subprocess.run([str(warren), "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "resources.x.targets: Field required" in result.stderr
