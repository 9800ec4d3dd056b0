"""A local control socket: `warren reload` and `warren status` talk to a running gateway,
sidecar or portal (core.reloading serves it).

One JSON object per line each way. The socket lives in state_dir with mode 0600, so only the
account that runs the process (and root) can use it.
"""

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("warren.control")

type Handler = Callable[[], Awaitable[dict[str, Any]]]


async def serve(path: Path, handlers: Mapping[str, Handler]) -> asyncio.Server:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await asyncio.wait_for(reader.readline(), 5))
            handler = handlers.get(str(request.get("command")))
            reply = await handler() if handler else {"ok": False, "error": "unknown command"}
        except Exception as error:  # a bad client must never take the gateway down
            log.exception("control request failed")
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    old_umask = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(answer, path=str(path))
    finally:
        os.umask(old_umask)


def portal_socket(state_dir: Path) -> Path:
    """The portal's socket; the gateway's is `Settings.control_path`, the sidecar's
    `core.tunnels.sidecar_socket`."""
    return state_dir / "portal.sock"


def call(path: Path, command: str, timeout: float = 30.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
