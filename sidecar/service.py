"""`warren sidecar`: the node sidecar process, its registration API and its control socket."""

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from core import control
from core.policy.check import node_capabilities
from core.settings import load_settings
from core.store import PolicyStore
from core.tunnels import PROBE_PORT, sidecar_socket
from core.watch import watch_file
from sidecar.api import make_app
from sidecar.node import NodeSidecar
from sidecar.running import setup_logging, stop_event
from sidecar.sockets import answer_probes

log = logging.getLogger("warren.sidecar")


async def _serve(config: Path) -> int:
    settings = load_settings(config)
    store = PolicyStore(settings.policy_file, node_capabilities(settings))
    sidecar = NodeSidecar(settings, store)
    sidecar.start()
    store.subscribe(sidecar.on_policy)
    tasks: list[asyncio.Task[Any]] = []
    runner = web.AppRunner(make_app(sidecar.register), access_log=None)
    socket_path = sidecar_socket(settings.state_dir)
    try:
        await runner.setup()
        api = settings.wireguard.api
        await web.TCPSite(runner, api.host, api.port).start()
        probes = await answer_probes(str(sidecar.address.ip), PROBE_PORT)

        async def reload() -> dict[str, Any]:
            return (await store.reload_async()).as_dict()

        async def status() -> dict[str, Any]:
            return sidecar.status()

        controls = await control.serve(socket_path, {"status": status, "reload": reload})
        stop = stop_event(on_hangup=lambda: tasks.append(asyncio.create_task(reload())))
        interval = settings.reload_poll.total_seconds()
        tasks += [
            asyncio.create_task(sidecar.watch()),
            asyncio.create_task(
                watch_file(settings.policy_file, interval, lambda: store.reload_async(force=False))
            ),
        ]
        log.info("registration API on http://%s (reached through the gateway)", api)
        await stop.wait()
        probes.close()
        controls.close()
    finally:
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        socket_path.unlink(missing_ok=True)
        sidecar.stop()
    return 0


def serve(config: Path, verbose: bool = False) -> int:
    setup_logging(verbose)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(config))
    return 0
