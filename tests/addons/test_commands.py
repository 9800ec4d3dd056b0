"""`warren gateway` on the command line (addons.commands): it re-runs itself optimised, serves,
and says why it cannot start without a trace; registering it imports no mitmproxy. The command
driven by typer's test runner, the serving it hands over to (addons.gateway) stood in for."""

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from mitmproxy.exceptions import OptionsError
from typer.testing import CliRunner

from addons import commands
from addons import gateway as lean
from core.problems import ConfigError, Problem

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def warren() -> None:
        pass

    commands.register(app)
    return app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """What the command asked for: re-running optimised with which arguments, serving what."""
    calls: list[object] = []
    config = tmp_path / "warren.yaml"
    monkeypatch.setattr(sys, "argv", ["warren", "gateway", "--config", str(config), "-v"])
    monkeypatch.setattr(lean, "optimised", lambda argv: calls.append(("optimised", argv)))

    def serve(path: Path, verbose: bool) -> int:
        calls.append((path, verbose))
        return 0

    monkeypatch.setattr(lean, "serve", serve)
    return calls


def test_the_command_reruns_itself_optimised_and_serves_its_config(
    served: list[object], tmp_path: Path
) -> None:
    config = tmp_path / "warren.yaml"
    result = runner.invoke(cli(), ["gateway", "--config", str(config), "-v"])
    assert result.exit_code == 0, result.output
    assert served == [("optimised", ["gateway", "--config", str(config), "-v"]), (config, True)]


def test_a_file_that_does_not_validate_is_said_without_a_trace(
    served: list[object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    problem = Problem(("listen",), "not an address", tmp_path / "warren.yaml", 3)

    def refuse(path: Path, verbose: bool) -> int:
        raise ConfigError([problem])

    monkeypatch.setattr(lean, "serve", refuse)
    result = runner.invoke(cli(), ["gateway", "--config", str(tmp_path / "warren.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'warren.yaml'}:3: listen: not an address\n"
    assert "Traceback" not in result.output


def test_a_configuration_the_pack_refuses_is_said_without_a_trace(
    served: list[object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(path: Path, verbose: bool) -> int:
        raise OptionsError("Warren cannot start:\npolicy.yaml:1: version: Input should be 1")

    monkeypatch.setattr(lean, "serve", refuse)
    result = runner.invoke(cli(), ["gateway", "--config", str(tmp_path / "warren.yaml")])
    assert result.exit_code == 1
    assert result.stderr == "Warren cannot start:\npolicy.yaml:1: version: Input should be 1\n"


def test_the_command_line_does_not_import_mitmproxy_until_the_gateway_runs() -> None:
    script = (
        "import sys, typer\n"
        "from typer.testing import CliRunner\n"
        "from addons import commands\n"
        "app = typer.Typer()\n"
        "app.callback()(lambda: None)\n"
        "commands.register(app)\n"
        "result = CliRunner().invoke(app, ['gateway', '--help'])\n"
        "assert result.exit_code == 0 and 'mitmproxy' in result.output, result.output\n"
        "print(sorted(name for name in sys.modules if name.startswith('mitmproxy')))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, check=True
    )
    assert done.stdout == "[]\n", done.stderr
