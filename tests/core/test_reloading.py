"""core.reloading: a real file change, a real SIGHUP to this process, a real control socket."""

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core import control
from core.policy.check import Capabilities
from core.policy.store import PolicyStore
from core.reloading import Reloading

POLL = 0.05


@dataclass(frozen=True)
class Loaded:
    text: str
    forced: bool

    def as_dict(self) -> dict[str, object]:
        return {"ok": True, "text": self.text, "forced": self.forced}


class Keeper:
    """Reads its file on every reload; remembers each one."""

    def __init__(self, path: Path, fail: bool = False) -> None:
        self.path = path
        self.fail = fail
        self.loads: list[Loaded] = []

    async def reload(self, *, force: bool) -> Loaded:
        if self.fail:
            raise RuntimeError("this reload breaks")
        loaded = Loaded(self.path.read_text(), force)
        self.loads.append(loaded)
        return loaded


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def ask(path: Path, command: str) -> dict[str, Any]:
    return await asyncio.to_thread(control.call, path, command, 5.0)


def send_sighup() -> None:
    # Only with a handler in place: SIGHUP's default would end the test run.
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGHUP)


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("one")
    return path


async def start(keeper: Keeper, socket: Path, **commands: control.Handler) -> Reloading:
    return await Reloading.start(
        files=[keeper.path],
        interval=POLL,
        reload=keeper.reload,
        control_path=socket,
        commands=commands,
    )


def test_a_change_to_the_file_reloads_it_unforced(watched: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        keeper = Keeper(watched)
        reloading = await start(keeper, tmp_path / "x.sock")
        try:
            await until(lambda: len(keeper.loads) == 1)  # the first look: changed since loading?
            watched.write_text("two, longer")
            await until(lambda: keeper.loads[-1].text == "two, longer")
            assert not keeper.loads[-1].forced
        finally:
            reloading.close()

    asyncio.run(scenario())


def test_sighup_reloads_forced(watched: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        keeper = Keeper(watched)
        reloading = await Reloading.start(
            files=[watched], interval=3600, reload=keeper.reload, control_path=tmp_path / "x.sock"
        )
        try:
            watched.write_text("two")
            send_sighup()
            await until(lambda: bool(keeper.loads))
            assert keeper.loads == [Loaded("two", forced=True)]
        finally:
            reloading.close()

    asyncio.run(scenario())


def test_the_control_socket_reloads_and_answers_the_process_commands(
    watched: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "state" / "portal.sock"

    async def status() -> dict[str, Any]:
        return {"ok": True, "loads": len(keeper.loads)}

    async def scenario() -> None:
        reloading = await start(keeper, socket, status=status)
        try:
            assert socket.stat().st_mode & 0o777 == 0o600
            watched.write_text("two")
            assert await ask(socket, "reload") == {"ok": True, "text": "two", "forced": True}
            assert (await ask(socket, "status"))["loads"] >= 1
            assert await ask(socket, "nonsense") == {"ok": False, "error": "unknown command"}
        finally:
            reloading.close()

    keeper = Keeper(watched)
    asyncio.run(scenario())


def test_close_ends_the_watch_the_signal_handler_and_the_socket(
    watched: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "x.sock"

    async def scenario() -> None:
        keeper = Keeper(watched)
        reloading = await start(keeper, socket)
        await until(lambda: len(keeper.loads) == 1)
        reloading.close()
        reloading.close()  # twice is harmless
        assert not socket.exists()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
        watched.write_text("two, after closing")
        await asyncio.sleep(POLL * 5)
        assert len(keeper.loads) == 1
        with pytest.raises(FileNotFoundError):
            await ask(socket, "reload")

    asyncio.run(scenario())


def test_close_leaves_a_socket_another_process_has_taken_over(
    watched: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "x.sock"

    async def scenario() -> None:
        first = await start(Keeper(watched), socket)
        second = await Reloading.start(
            files=[], interval=POLL, reload=Keeper(watched).reload, control_path=socket
        )
        first.close()
        assert socket.is_socket()
        assert (await ask(socket, "reload"))["ok"]
        second.close()
        assert not socket.exists()

    asyncio.run(scenario())


def test_a_reload_that_raises_is_answered_logged_and_outlived(
    watched: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    socket = tmp_path / "x.sock"

    async def scenario() -> None:
        keeper = Keeper(watched, fail=True)
        reloading = await start(keeper, socket)
        try:
            reply = await ask(socket, "reload")
            assert reply == {"ok": False, "error": "RuntimeError: this reload breaks"}
            send_sighup()
            await until(lambda: "reloading on SIGHUP failed" in caplog.text)
            keeper.fail = False
            watched.write_text("two, mended")
            await until(lambda: bool(keeper.loads) and keeper.loads[-1].text == "two, mended")
        finally:
            reloading.close()

    asyncio.run(scenario())


def test_reload_is_not_a_command_to_override(watched: Path, tmp_path: Path) -> None:
    async def other() -> dict[str, Any]:
        return {"ok": True}

    async def scenario() -> None:
        with pytest.raises(ValueError, match="reload"):
            await start(Keeper(watched), tmp_path / "x.sock", reload=other)
        assert not (tmp_path / "x.sock").exists()

    asyncio.run(scenario())


def test_a_policy_store_plugs_in_and_a_bad_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nresources: {}\n")
    store = PolicyStore(policy, Capabilities())
    socket = tmp_path / "gateway.sock"

    async def scenario() -> None:
        reloading = await Reloading.start(
            files=[policy], interval=3600, reload=store.reload_async, control_path=socket
        )
        try:
            good = store.current.digest
            policy.write_text("version: 1\nresources: {app: {host: [}\n")
            reply = await ask(socket, "reload")
            assert reply["ok"] is False
            assert "not valid YAML" in reply["error"]
            assert reply["digest"] == good
            assert store.current.digest == good
        finally:
            reloading.close()

    asyncio.run(scenario())
