import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from redis.asyncio import Redis
from typer.testing import CliRunner

from core.cluster import nodes
from core.cluster.documents import Kind, push
from core.cluster.records import DocumentState, NodeRecord, WireGuardFacts
from core.cluster.registry import keys_key, publish, removed_names
from core.storage import redis_client

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(lambda: None)  # a second command, so `nodes` stays a group of its own
    nodes.register(app)
    return app


def config(directory: Path, storage: str) -> Path:
    path = directory / "warren.yaml"
    path.write_text(f"storage: {storage}\nnode: {{name: b}}\nstate_dir: state\n")
    return path


def on(redis_url: str, work: Callable[[Redis], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        redis = redis_client(redis_url)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def record(name: str, policy: str, **fields: Any) -> NodeRecord:
    now = time.time()
    return NodeRecord(
        name=name,
        instance=name,
        heartbeat=now,
        started=now,
        url=f"https://{name}.example.com",
        wireguard=WireGuardFacts(public_key="pQ0Zk1RbAbCdEfGh=", subnet="100.89.1.0/24"),
        policy=DocumentState(digest=policy),
        **fields,
    )


def test_nodes_lists_every_live_node_and_what_differs_from_the_push(
    redis_url: str, tmp_path: Path
) -> None:
    async def setup(redis: Redis) -> None:
        await redis.flushdb()
        pushed = await push(redis, Kind.POLICY, "version: 1\n", "a")
        await publish(redis, record("a", pushed.digest, sites_online=("home",), ready=True))
        await publish(
            redis,
            record("b", "0123456789ab", users=DocumentState(digest="u1", error="users.yaml: bad")),
        )

    on(redis_url, setup)
    path = config(tmp_path, redis_url)
    listed = runner.invoke(cli(), ["nodes", "-c", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    report = json.loads(listed.output)
    a, b = report["nodes"]
    assert (a["name"], a["url"], a["sites_online"]) == ("a", "https://a.example.com", ["home"])
    assert not a["policy"]["local_edit"]
    assert b["policy"]["local_edit"]
    assert b["users"]["error"] == "users.yaml: bad"
    assert "instance" not in a

    table = runner.invoke(cli(), ["nodes", "-c", str(path)])
    assert table.exit_code == 0, table.output
    assert "https://a.example.com" in table.output
    assert "pQ0Zk1Rb…" in table.output
    assert "local edit" in table.output
    assert "(not ready)" in table.output  # b
    assert report["warnings"], "a redis-server that persists nothing is warned about"
    assert "warning:" in table.output


def test_remove_and_readmit(redis_url: str, tmp_path: Path) -> None:
    async def setup(redis: Redis) -> None:
        await redis.flushdb()
        await publish(redis, record("a", "x"))
        await redis.set(keys_key("a"), '{"keys": []}')

    on(redis_url, setup)
    path = config(tmp_path, redis_url)
    removed = runner.invoke(cli(), ["nodes", "remove", "a", "-c", str(path)])
    assert removed.exit_code == 0, removed.output
    assert "removed a (was live)" in removed.output
    assert on(redis_url, removed_names) == {"a"}
    report = json.loads(runner.invoke(cli(), ["nodes", "-c", str(path), "--json"]).output)
    assert (report["nodes"], report["removed"]) == ([], ["a"])
    readmitted = runner.invoke(cli(), ["nodes", "readmit", "a", "-c", str(path)])
    assert "a may join again" in readmitted.output
    assert on(redis_url, removed_names) == set()


def test_a_single_node_shows_itself_from_its_files(tmp_path: Path) -> None:
    path = config(tmp_path, "memory://")
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    listed = runner.invoke(cli(), ["nodes", "-c", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    report = json.loads(listed.output)
    assert report["shared"] is False
    assert [node["name"] for node in report["nodes"]] == ["b"]
    assert report["nodes"][0]["policy"]["digest"]
    assert "not shared" in report["note"]
    refused = runner.invoke(cli(), ["nodes", "remove", "a", "-c", str(path)])
    assert refused.exit_code == 1
    assert "memory://" in refused.output


def test_storage_that_does_not_answer_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = config(tmp_path, "redis://127.0.0.1:1/0")
    listed = runner.invoke(cli(), ["nodes", "-c", str(path)])
    assert listed.exit_code == 1
    assert "did not answer" in listed.output
