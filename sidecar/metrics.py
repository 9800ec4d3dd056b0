"""The node sidecar's metrics listener (core.metrics.server over core.metrics.sidecar): what the
sidecar knows of each of the policy's sites, read when Prometheus scrapes. /readyz is ready
while the WireGuard interface is alive."""

import logging

from core.metrics.server import MetricsServer, Ready
from core.metrics.sidecar import SidecarReading, SiteReading, sidecar_registry
from core.settings import Settings
from sidecar.node import NodeSidecar

log = logging.getLogger("warren.sidecar")


def reading(sidecar: NodeSidecar) -> SidecarReading:
    try:
        peers = {peer.public_key: peer for peer in sidecar.device.peers()}
    except Exception as error:  # the interface in trouble: every site reads as offline
        log.warning("reading peers for metrics failed: %r", error)
        peers = {}
    sites = []
    for name in sorted(sidecar.store.current.model.sites):
        allocation = sidecar.registry.sites.get(name)
        peer = peers.get(allocation.public_key) if allocation is not None else None
        sites.append(
            SiteReading(
                site=name,
                online=sidecar.online.get(name, False),
                last_handshake=peer.last_handshake if peer is not None else None,
                rx_bytes=peer.rx_bytes if peer is not None else 0,
                tx_bytes=peer.tx_bytes if peer is not None else 0,
                recoveries=sidecar.recoveries.get(name, 0),
            )
        )
    return SidecarReading(sites, sidecar.interface_recoveries)


async def start_metrics(settings: Settings, sidecar: NodeSidecar) -> MetricsServer | None:
    """The listener of `metrics.sidecar`, or None when it is off or cannot bind (a warning)."""
    listen = settings.metrics.sidecar
    if listen is None:
        return None

    async def ready() -> Ready:
        alive = sidecar.device.alive()
        return Ready(alive, "ok" if alive else "interface down")

    registry = sidecar_registry(sidecar.store, lambda: reading(sidecar))
    server = MetricsServer(listen, registry, ready)
    return server if await server.start() else None
