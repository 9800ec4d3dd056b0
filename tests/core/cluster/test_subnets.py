"""Per-node tunnel subnets: a node's subnet may not overlap another live node's, read from the
heartbeats in a real Redis."""

import asyncio
import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from core.cluster.records import NodeRecord, WireGuardFacts
from core.cluster.registry import publish
from core.cluster.subnets import check_subnet, overlap, subnet_problem
from core.problems import ConfigError
from core.settings import Settings, load_settings
from core.storage import redis_client


def record(name: str, subnet: str | None, **fields: Any) -> NodeRecord:
    now = time.time()
    facts = WireGuardFacts(subnet=subnet)
    return NodeRecord(
        name=name, instance=name, heartbeat=now, started=now, wireguard=facts, **fields
    )


def test_disjoint_subnets_are_fine_and_an_overlap_names_the_other_node() -> None:
    others = [record("a", "100.89.1.0/24"), record("b", "100.89.2.0/24")]
    assert overlap("c", IPv4Network("100.89.3.0/24"), others) is None
    problem = overlap("c", IPv4Network("100.89.0.0/16"), others)
    assert problem is not None
    assert "node a's 100.89.1.0/24" in problem
    assert "\n" not in problem  # one line, as the sidecar and `warren check` print it
    assert overlap("c", IPv4Network("100.89.2.128/25"), others) is not None


def test_the_nodes_own_record_and_records_without_a_subnet_say_nothing() -> None:
    records = [record("a", "100.89.1.0/24"), record("b", None), record("x", "not a net")]
    assert overlap("a", IPv4Network("100.89.1.0/24"), records) is None


def test_the_live_nodes_in_storage_are_what_a_subnet_is_checked_against(redis_url: str) -> None:
    async def scenario() -> None:
        redis = redis_client(redis_url)
        try:
            await redis.flushdb()
            await publish(redis, record("a", "100.89.1.0/24"))
        finally:
            await redis.aclose()
        assert await subnet_problem(redis_url, "b", IPv4Network("100.89.2.0/24")) is None
        clash = await subnet_problem(redis_url, "b", IPv4Network("100.89.1.0/24"))
        assert clash is not None
        assert "node a" in clash
        assert await subnet_problem("memory://", "b", IPv4Network("100.89.1.0/24")) is None

    asyncio.run(scenario())


def settings_for(tmp_path: Path, storage: str, subnet: str) -> Settings:
    (tmp_path / "warren.yaml").write_text(
        f"storage: {storage}\nnode: {{name: b}}\nwireguard: {{subnet: {subnet}}}\n"
    )
    return load_settings(tmp_path / "warren.yaml")


def test_warren_check_refuses_an_overlap_and_warns_when_storage_is_away(
    tmp_path: Path, redis_url: str
) -> None:
    async def publish_a() -> None:
        redis = redis_client(redis_url)
        try:
            await redis.flushdb()
            await publish(redis, record("a", "100.89.1.0/24"))
        finally:
            await redis.aclose()

    asyncio.run(publish_a())
    source = tmp_path / "warren.yaml"
    assert check_subnet(settings_for(tmp_path, redis_url, "100.89.2.0/24"), source) is None
    with pytest.raises(ConfigError) as refused:
        check_subnet(settings_for(tmp_path, redis_url, "100.89.0.0/16"), source)
    (problem,) = refused.value.problems
    assert str(problem).startswith(f"{source}: wireguard.subnet: wireguard.subnet 100.89.0.0/16")
    away = check_subnet(settings_for(tmp_path, "redis://127.0.0.1:1/0", "100.89.1.0/24"), source)
    assert away is not None
    assert "not checked" in away
