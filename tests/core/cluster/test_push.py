"""The push commands (core.cluster.push) as an admin runs them, against a real redis-server,
with no gateway running: what is stored, and what `warren user ...` does with a newer push."""

import asyncio
import subprocess
from pathlib import Path

from core.auth.users import User, UsersFile, hash_secret, load_users, save_users
from core.cluster.documents import Kind, PushedDocument, current, push
from core.storage import redis_client
from demo import processes

PASSWORD = "correct horse battery"


def node(directory: Path, redis_url: str) -> Path:
    directory.mkdir()
    config = directory / "warren.yaml"
    config.write_text(
        f"storage: {redis_url}\nnode: {{name: here}}\nstate_dir: state\nusers_file: users.yaml\n"
    )
    return config


def warren(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*processes.warren(*args), "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def stored(url: str, kind: Kind) -> PushedDocument | None:
    async def read() -> PushedDocument | None:
        redis = redis_client(url)
        try:
            return await current(redis, kind)
        finally:
            await redis.aclose()

    return asyncio.run(read())


def users_file(path: Path, *names: str) -> Path:
    """users.yaml as `warren user` writes it."""
    save_users(path, UsersFile(users={n: User(password=hash_secret(PASSWORD)) for n in names}))
    return path


def test_users_push_stores_the_file_with_this_nodes_name(tmp_path: Path, redis_url: str) -> None:
    asyncio.run(_flush(redis_url))
    config = node(tmp_path / "here", redis_url)
    file = users_file(tmp_path / "users.yaml", "carol")
    done = warren(config, "users", "push", str(file))
    assert done.returncode == 0, done.stderr
    assert "pushed users version 1" in done.stdout
    assert "no live node reports" in done.stdout  # no gateway runs: nothing to wait for
    document = stored(redis_url, Kind.USERS)
    assert document is not None
    assert document.text == file.read_text()
    assert document.pushed_by == "here"


def test_a_user_change_starts_from_a_newer_push_this_node_missed(
    tmp_path: Path, redis_url: str
) -> None:
    asyncio.run(_flush(redis_url))
    config = node(tmp_path / "here", redis_url)
    local = users_file(tmp_path / "here" / "users.yaml", "dave")
    # Stale: carol's file was pushed from b meanwhile, while this node's gateway was down.
    asyncio.run(_push(redis_url, users_file(tmp_path / "b.yaml", "carol").read_text()))

    done = warren(config, "user", "add", "erin", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert set(load_users(local).users) == {"carol", "erin"}
    document = stored(redis_url, Kind.USERS)
    assert document is not None
    assert document.version == 2
    assert document.text == local.read_text()


async def _flush(url: str) -> None:
    redis = redis_client(url)
    await redis.flushdb()
    await redis.aclose()


async def _push(url: str, text: str) -> None:
    redis = redis_client(url)
    await push(redis, Kind.USERS, text, "b")
    await redis.aclose()
