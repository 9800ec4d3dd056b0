"""The node sidecar's metrics, all read at scrape time from what the sidecar knows of each site
(its probes) and what WireGuard counts for each peer: online, the last handshake's age, bytes
received and sent, how often the site came back after being offline; the interface brought back
by the watch; the policy's reloads (core.metrics.policy)."""

import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.metrics.policy import PolicyCollector
from core.policy.store import PolicyStore


class SiteReading(NamedTuple):
    site: str
    online: bool
    last_handshake: float | None  # seconds since the epoch; None: never
    rx_bytes: int  # WireGuard's counters for the site's peer: from the site, to it
    tx_bytes: int
    recoveries: int


class SidecarReading(NamedTuple):
    sites: Sequence[SiteReading]
    interface_recoveries: int


type SidecarView = Callable[[], SidecarReading]


def sidecar_registry(store: PolicyStore, view: SidecarView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PolicyCollector(lambda: store))
    registry.register(_SitesCollector(view))
    return registry


class _SitesCollector(Collector):
    def __init__(self, view: SidecarView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        reading = self._view()
        labels = ["site"]
        online = GaugeMetricFamily(
            "warren_site_online", "1 while the site's tunnel answers probes, else 0.", labels=labels
        )
        age = GaugeMetricFamily(
            "warren_site_handshake_age_seconds",
            "Seconds since the site's peer last completed a WireGuard handshake (absent: never).",
            labels=labels,
        )
        received = CounterMetricFamily(
            "warren_site_received_bytes", "Bytes WireGuard received from the site.", labels=labels
        )
        sent = CounterMetricFamily(
            "warren_site_sent_bytes", "Bytes WireGuard sent to the site.", labels=labels
        )
        recoveries = CounterMetricFamily(
            "warren_site_recoveries",
            "Times the site came back online after it had been offline.",
            labels=labels,
        )
        now = time.time()
        for site in reading.sites:
            online.add_metric([site.site], 1 if site.online else 0)
            if site.last_handshake is not None:
                age.add_metric([site.site], max(0.0, now - site.last_handshake))
            received.add_metric([site.site], site.rx_bytes)
            sent.add_metric([site.site], site.tx_bytes)
            recoveries.add_metric([site.site], site.recoveries)
        yield from (online, age, received, sent, recoveries)
        yield CounterMetricFamily(
            "warren_tunnel_interface_recoveries",
            "Times the sidecar brought the WireGuard interface back after it went away.",
            value=reading.interface_recoveries,
        )
