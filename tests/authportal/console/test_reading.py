"""What the console reads from the node's control sockets: a real socket (core.control.serve)
that answers, one that lacks the command (an older gateway), one that is gone, one that is
stuck. None of them is an error for the console: each is a fact to show."""

import asyncio
import socket
from pathlib import Path
from typing import Any

from authportal.console import reading
from core import control


def test_answers_missing_commands_and_silent_sockets_are_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sock"
    refused = [{"reference": "ab12", "status": 403}, "not a record"]

    async def status() -> dict[str, Any]:
        return {"ok": True, "digest": "abc"}

    async def refusals() -> dict[str, Any]:
        return {"ok": True, "refusals": refused}

    async def scenario() -> None:
        server = await control.serve(path, {"status": status})
        try:
            answer = await reading.ask(path, "status")
            assert (answer.ok, answer.reply["digest"]) == (True, "abc")
            assert await reading.refusals_at(path) == ([], reading.NOT_AVAILABLE)
        finally:
            server.close()
        server = await control.serve(path, {"refusals": refusals})
        try:  # what is not a record is left out
            assert await reading.refusals_at(path) == ([refused[0]], None)
        finally:
            server.close()
            await server.wait_closed()
        path.unlink(missing_ok=True)
        assert (await reading.ask(path, "status")).problem == reading.NOT_REACHABLE

    asyncio.run(scenario())


def test_a_socket_that_never_answers_is_not_reachable_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "stuck.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.bind(str(path))
        stuck.listen(1)  # connections wait in the backlog; nothing ever reads them
        answer = asyncio.run(reading.ask(path, "status"))
    assert answer.problem == reading.NOT_REACHABLE
