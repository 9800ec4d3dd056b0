import asyncio
from pathlib import Path

from core.policy.check import Capabilities
from core.store import PolicyStore

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
    result = store.reload()
    assert result.ok
    assert result.changed
    assert store.current is not first
    assert seen == [store.current]

    good = store.current
    path.write_text(POLICY.replace("port: 1", "port: none") % "three")
    result = store.reload()
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
