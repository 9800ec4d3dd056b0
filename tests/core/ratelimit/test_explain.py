"""`warren explain` lists the rate limits a request counts against."""

import json
from pathlib import Path

from typer.testing import CliRunner

from core.cli import app
from tests.support.ratelimits import POLICY

runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_explain_lists_the_limits_a_request_counts_against(tmp_path: Path) -> None:
    policy = write(tmp_path, POLICY)
    result = runner.invoke(
        app,
        ["explain", str(policy), "--host", "app.example", "--path", "/login", "--method", "post"],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("limit ")]
    assert lines == [
        "limit     rate_limits[0]  1000/hour per ip (sliding window, on storage error: open); "
        "counts ip:203.0.113.10",
        "limit     resources.app.rate_limits[1]  5 per minute per ip, POST on /login "
        "(moving window, on storage error: open); counts ip:203.0.113.10",
        "limit     resources.app.rate_limits[2]  100/minute per resource "
        "(sliding window, on storage error: closed); counts resource:app",
    ]
    as_json = runner.invoke(
        app, ["explain", str(policy), "--host", "app.example", "--path", "/api/x", "--json"]
    )
    limits = json.loads(as_json.output)["rate_limits"]
    assert [line.split()[0] for line in limits] == [
        "rate_limits[0]",
        "resources.app.rate_limits[0]",
        "resources.app.rate_limits[2]",
    ]
    assert "(a request with x-api-key counts per value)" in limits[1]
    # A request the rules refuse never reaches the limits.
    denied = runner.invoke(
        app, ["explain", str(policy), "--host", "app.example", "--path", "/admin/x", "--json"]
    )
    assert json.loads(denied.output)["rate_limits"] == []
