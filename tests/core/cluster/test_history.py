"""`warren policy history` and `warren policy show` (core.cluster.history) against a real
redis-server: the kept versions, newest first, and any one's text, to push again."""

import asyncio
from pathlib import Path

from core.cluster.documents import HISTORY, Kind, push
from core.storage import redis_client
from tests.core.cluster.test_push import node, warren


async def _pushed(url: str, count: int) -> None:
    redis = redis_client(url)
    await redis.flushdb()
    for number in range(1, count + 1):
        await push(redis, Kind.POLICY, f"# version {number}\nversion: 1\n", f"n{number}")
    await redis.aclose()


def test_history_lists_the_kept_versions_and_show_prints_one(
    tmp_path: Path, redis_url: str
) -> None:
    config = node(tmp_path / "here", redis_url)
    asyncio.run(_pushed(redis_url, HISTORY + 2))
    listed = warren(config, "policy", "history")
    assert listed.returncode == 0, listed.stderr
    versions = [int(line.split()[0]) for line in listed.stdout.splitlines()]
    assert versions == list(range(HISTORY + 2, 2, -1))  # newest first, the last HISTORY
    assert listed.stdout.splitlines()[0].endswith(f"n{HISTORY + 2}")

    shown = warren(config, "policy", "show", "5")
    assert shown.stdout == "# version 5\nversion: 1\n"
    assert warren(config, "policy", "show").stdout.startswith(f"# version {HISTORY + 2}\n")
    gone = warren(config, "policy", "show", "1")
    assert gone.returncode == 1
    assert "version 1 is not kept" in gone.stderr
    assert "no users file was pushed yet" in warren(config, "users", "history").stdout
