"""`warren sidecar`: the node sidecar process, its registration API and its control socket
(policy.yaml kept current by core.reloading, `status` answering for the tunnels)."""

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from core.cluster.subnets import subnet_problem
from core.metrics.server import MetricsServer
from core.notify import notify_ready
from core.policy.check import node_capabilities
from core.policy.store import PolicyStore
from core.problems import ConfigError, Problem
from core.reloading import Reloading
from core.settings import Settings, load_settings
from core.storage import redact
from core.tunnels import PROBE_PORT, sidecar_socket
from sidecar.api import make_app
from sidecar.metrics import start_metrics
from sidecar.node import NodeSidecar
from sidecar.running import setup_logging, stop_event
from sidecar.sockets import answer_probes

log = logging.getLogger("warren.sidecar")


async def _serve(config: Path) -> int:
    settings = load_settings(config)
    await _refuse_overlapping_subnet(settings, config)
    store = PolicyStore(settings.policy_file, node_capabilities(settings))
    sidecar = NodeSidecar(settings, store)
    sidecar.start()
    store.subscribe(sidecar.on_policy)
    runner = web.AppRunner(make_app(sidecar.register, sidecar.streams), access_log=None)
    reloading: Reloading | None = None
    watch: asyncio.Task[None] | None = None
    metrics: MetricsServer | None = None
    following = asyncio.create_task(sidecar.nodes.follow())
    try:
        await runner.setup()
        api = settings.wireguard.api
        await web.TCPSite(runner, api.host, api.port).start()
        probes = await answer_probes(str(sidecar.address.ip), PROBE_PORT)
        metrics = await start_metrics(settings, sidecar)  # a warning, not an end, if it cannot

        async def status() -> dict[str, Any]:
            return sidecar.status()

        reloading = await Reloading.start(
            files=[settings.policy_file],
            interval=settings.reload_poll.total_seconds(),
            reload=store.reload_async,
            control_path=sidecar_socket(settings.state_dir),
            commands={"status": status},
        )
        stop = stop_event()
        watch = asyncio.create_task(sidecar.watch())
        log.info("registration API on http://%s (reached through the gateway)", api)
        notify_ready(f"{settings.wireguard.interface} up; registration API on {api}")
        await stop.wait()
        probes.close()
    finally:
        following.cancel()
        if watch is not None:
            watch.cancel()
        if reloading is not None:
            reloading.close()
        if metrics is not None:
            await metrics.close()
        await runner.cleanup()
        sidecar.stop()
    return 0


async def _refuse_overlapping_subnet(settings: Settings, config: Path) -> None:
    """Before the interface exists: a subnet another live node uses would collide on every site
    that keeps a tunnel to both (core.cluster.subnets). Storage that cannot be read leaves the
    question open, and the node starts, as it starts on its local copies when storage is down;
    the site agents refuse a second tunnel whose addresses clash with one they have."""
    name, subnet = settings.node_name, settings.wireguard.subnet
    try:
        problem = await subnet_problem(settings.storage, name, subnet)
    except Exception as error:  # redis' errors are not OSErrors: any failure to read counts
        log.warning(
            "cannot check wireguard.subnet against the other nodes in %s: %r",
            redact(settings.storage),
            error,
        )
        return
    if problem is not None:
        raise ConfigError([Problem(("wireguard", "subnet"), problem, config)])


def serve(config: Path, verbose: bool = False) -> int:
    setup_logging(verbose, "sidecar", config)  # warren.yaml's logging.format
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(config))
    return 0
