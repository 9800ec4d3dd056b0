"""`rate_limits` checked by `warren check`: each mistake at the key to fix, and the warnings."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from tests.support.ratelimits import POLICY

runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    result = runner.invoke(app, ["check", str(write(tmp_path, text))])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "message"),
    [
        (
            "limit: 1000/hour",
            "limit: 1000/hr",
            3,
            "rate_limits[0].limit",
            "'1000/hr' is not a rate limit like 100/minute",
        ),
        ("limit: 1000/hour", "limit: 0/hour", 3, "rate_limits[0].limit", "'0/hour' allows nothing"),
        (
            "per: header:X-Api-Key",
            "per: header:X-Real-IP",
            12,
            "resources.app.rate_limits[0].per",
            "x-real-ip is set by clients at will",
        ),
        (
            "strategy: moving",
            "strategy: leaky",
            13,
            "resources.app.rate_limits[1].strategy",
            "Input should be 'fixed', 'moving' or 'sliding'",
        ),
        (
            "on_storage_error: closed",
            "on_storage_error: ignore",
            14,
            "resources.app.rate_limits[2].on_storage_error",
            "Input should be 'open' or 'closed'",
        ),
        (
            'path: "/api/**"',
            'path: "api"',
            12,
            "resources.app.rate_limits[0].path[0]",
            "a path pattern starts with /",
        ),
        (
            "method: POST",
            "method: P0ST",
            13,
            "resources.app.rate_limits[1].method[0]",
            "'P0ST' is not an HTTP method",
        ),
        (
            "per: resource,",
            "per: resource, burst: 3,",
            14,
            "resources.app.rate_limits[2].burst",
            "unknown key",
        ),
        (
            "      - {limit: 10/minute, per: ip}",
            "      - {limit: 10/minute, per: user, path: /x}",
            20,
            "resources.game.rate_limits[0].per",
            "a tcp resource limits connections per ip or per resource",
        ),
        (
            "      - {limit: 10/minute, per: ip}",
            "      - {limit: 10/minute, per: user, path: /x}",
            20,
            "resources.game.rate_limits[0].path",
            "a tcp resource has no path to match",
        ),
        (
            "      - {limit: 100/minute, per: resource, on_storage_error: closed}",
            "      - {limit: 100/minute, per: resource}\n      - {limit: 100 / minute, per: resource}",
            15,
            "resources.app.rate_limits[3]",
            "the same limit as resources.app.rate_limits[2]: each request would count twice",
        ),
    ],
)
def test_check_names_the_key_and_line_of_each_mistake(
    tmp_path: Path, old: str, new: str, line: int, where: str, message: str
) -> None:
    assert old in POLICY
    code, output = check(tmp_path, POLICY.replace(old, new))
    assert code == 1
    assert f"policy.yaml:{line}: {where}: {message}" in output, output


def test_per_user_is_a_warning_until_sign_in_exists(tmp_path: Path) -> None:
    text = POLICY.replace("per: header:X-Api-Key", "per: user")
    code, output = check(tmp_path, text)
    assert code == 0, output
    assert (
        "warning: " + str(tmp_path / "policy.yaml") + ":12: resources.app.rate_limits[0].per: "
        "per: user counts each client IP instead until sign-in is configured" in output
    )
    from core.policy.limitchecks import rate_limit_warnings

    policy = parse_policy(text, Capabilities())
    assert rate_limit_warnings(policy.model, sign_in=True) == []
    # The same through warren.yaml, which checks its policy.
    settings = write(tmp_path, "policy_file: policy.yaml\n", "warren.yaml")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 0
    assert "warning: " in result.output
    assert "rate_limits[0].per" in result.output
