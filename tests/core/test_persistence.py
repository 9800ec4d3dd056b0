"""Whether the storage keeps sign-outs across a restart, asked of real redis-servers."""

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.persistence import persistence_problem
from demo import processes
from tests.support.redis import RedisServer, require_redis_server


def _problem(tmp_path: Path, *options: str) -> str | None:
    require_redis_server()
    server = RedisServer(tmp_path, options).start()
    try:
        return asyncio.run(persistence_problem(server.url))
    finally:
        server.stop()


def test_a_server_that_persists_nothing_is_named_with_what_it_forgets(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "--save", "", "--appendonly", "no")
    assert problem is not None
    assert "persists nothing" in problem
    assert "signed-out sessions work again" in problem
    assert "appendonly yes" in problem


@pytest.mark.parametrize(
    "options",
    [("--appendonly", "yes", "--save", ""), ("--appendonly", "no", "--save", "60 1")],
    ids=["aof", "rdb"],
)
def test_aof_or_rdb_snapshots_are_enough(tmp_path: Path, options: tuple[str, ...]) -> None:
    assert _problem(tmp_path, *options) is None


def test_a_server_refusing_config_is_asked_info_and_says_what_it_could_not_see(
    tmp_path: Path,
) -> None:
    """Managed Redis often disables CONFIG: AOF still shows in INFO; snapshots do not."""
    (tmp_path / "aof").mkdir()
    (tmp_path / "rdb").mkdir()
    refused = ("--rename-command", "CONFIG", "")
    assert _problem(tmp_path / "aof", "--appendonly", "yes", *refused) is None
    problem = _problem(tmp_path / "rdb", "--appendonly", "no", "--save", "60 1", *refused)
    assert problem is not None
    assert problem.startswith("could not check whether")
    assert "RDB snapshots" in problem


def test_an_unreachable_server_is_reported_not_raised() -> None:
    url = f"redis://:secret@127.0.0.1:{processes.free_port()}/0"
    problem = asyncio.run(persistence_problem(url))
    assert problem is not None
    assert problem.startswith("could not ask redis://:***@127.0.0.1")
    assert "secret" not in problem


def test_memory_storage_has_nothing_to_persist_in_redis() -> None:
    assert asyncio.run(persistence_problem("memory://")) is None


def test_warren_check_warns_but_passes_when_storage_persists_nothing(tmp_path: Path) -> None:
    require_redis_server()
    server = RedisServer(tmp_path).start()  # the tests' default: no AOF, no snapshots
    try:
        (tmp_path / "policy.yaml").write_text(
            "version: 1\nresources: {x: {host: a.example, targets: [{host: 127.0.0.1, port: 9}]}}\n"
        )
        settings = tmp_path / "warren.yaml"
        settings.write_text(f"policy_file: policy.yaml\nstorage: {server.url}\nnode: {{name: a}}\n")
        result = CliRunner().invoke(app, ["check", str(settings)])
        assert result.exit_code == 0, result.output
        assert "warning: storage: redis://127.0.0.1" in result.output
        assert "persists nothing" in result.output
        server.command("CONFIG", "SET", "appendonly", "yes")
        result = CliRunner().invoke(app, ["check", str(settings)])
        assert result.exit_code == 0, result.output
        assert "warning: storage" not in result.output
    finally:
        server.stop()
