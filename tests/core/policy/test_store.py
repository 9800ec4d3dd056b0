import asyncio
from pathlib import Path

from core.policy.check import Capabilities
from core.policy.store import PolicyStore

POLICY = """\
version: 1
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 1}]
    rules: [{action: deny, path: /%s}]
"""


def test_reload_swaps_a_valid_file_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % "one")
    store = PolicyStore(path, Capabilities())
    first = store.current
    seen: list[object] = []
    store.subscribe(seen.append)

    path.write_text(POLICY % "two")
    result = asyncio.run(store.reload_async())
    assert result.ok
    assert result.changed
    assert store.current is not first
    assert seen == [store.current]

    good = store.current
    path.write_text(POLICY.replace("port: 1", "port: none") % "three")
    result = asyncio.run(store.reload_async())
    assert not result.ok
    assert result.error is not None
    assert "resources.app.targets[0].port" in result.error
    assert store.current is good
    assert store.failed_reloads == 1
    assert store.last_error == result.error


def test_async_reload_skips_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % "one")
    store = PolicyStore(path, Capabilities())
    result = asyncio.run(store.reload_async(force=False))
    assert result.ok
    assert not result.changed
    path.write_text(POLICY % "two")
    assert asyncio.run(store.reload_async(force=False)).changed


def test_an_adopted_policy_is_written_and_swapped_in_at_once(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % "one")
    path.chmod(0o640)
    store = PolicyStore(path, Capabilities())
    result = asyncio.run(store.adopt(POLICY % "pushed"))
    assert result.ok
    assert result.changed
    assert path.read_text() == POLICY % "pushed"
    assert path.stat().st_mode & 0o777 == 0o640  # the portal's account still reads it
    assert store.current.digest == result.digest
    assert not asyncio.run(store.reload_async(force=False)).changed  # the watch has nothing to do


def test_an_adopted_policy_this_node_refuses_leaves_the_file_and_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % "one")
    store = PolicyStore(path, Capabilities())  # no country database on this node
    good = store.current
    refused = POLICY.replace("path: /%s", "country: [DE]")
    result = asyncio.run(store.adopt(refused))
    assert not result.ok
    assert result.error is not None
    assert "country" in result.error
    assert store.last_error == result.error
    assert store.current is good
    assert path.read_text() == POLICY % "one"
    # The good local file is not taken for the refused copy: an edit of it still reloads.
    path.write_text(POLICY % "edited")
    assert asyncio.run(store.reload_async(force=False)).changed
    assert store.last_error is None


def test_an_adopted_policy_the_node_cannot_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % "one")
    store = PolicyStore(path, Capabilities())
    good = store.current
    path.unlink()
    # Where nothing can be written, for root too (a read-only mount holding the file).
    path.symlink_to("/proc/warren-nowhere/policy.yaml")
    result = asyncio.run(store.adopt(POLICY % "pushed"))
    assert not result.ok
    assert "cannot write the pushed policy" in str(result.error)
    assert store.current is good
    assert store.last_error == result.error
