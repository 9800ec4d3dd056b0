"""Every process's metrics registry built over real services, each series present at least once:
what the dashboard test and the metric-definition tests scrape."""

import asyncio
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.auth.signinstate import open_kv
from core.geo import GeoSource
from core.metrics.gateway import GatewayMetrics, GatewayServices
from core.metrics.portal import OUTCOMES, PortalMetrics
from core.metrics.sidecar import SidecarReading, SiteReading, sidecar_registry
from core.policy.check import Capabilities
from core.policy.store import PolicyStore
from core.ratelimit.limiter import RateLimiter
from core.tunnels import decode_sites, encode_sites

POLICY = """\
version: 1
sites:
  home: {secret_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
  cabin: {secret_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
resources:
  app:
    host: app.example
    auth: public
    targets: [{site: home, host: 127.0.0.1, port: 3000}]
"""


def store(directory: Path) -> PolicyStore:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.yaml"
    path.write_text(POLICY)
    return PolicyStore(path, Capabilities())


def fake_geo() -> GeoSource:
    """geodb's GeoService as the collector reads it: `current.country` and `current.asn`, each
    behind an LRU cache."""
    country = lru_cache(maxsize=16)(lambda ip: "DE")
    asn = lru_cache(maxsize=16)(lambda ip: 64500)
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
        country(ip)
    asn("192.0.2.1")
    return cast(GeoSource, SimpleNamespace(current=SimpleNamespace(country=country, asn=asn)))


def gateway_metrics(directory: Path) -> tuple[GatewayMetrics, RateLimiter]:
    policy = store(directory)
    limiter = RateLimiter("memory://")
    sites = decode_sites(
        encode_sites({"home": ("100.89.0.2", True, []), "cabin": ("100.89.0.3", False, [])})
    ).for_policy(policy.current.model)
    services = GatewayServices(policy, limiter, fake_geo(), sites)
    metrics = GatewayMetrics(lambda: services)
    metrics.observe("app", 200, "allow", None, 0.012, "session")
    metrics.observe("-", 404, "none", "routing", None, None)
    return metrics, limiter


def portal_metrics(directory: Path) -> PortalMetrics:
    metrics = PortalMetrics(store(directory), open_kv("memory://", directory))
    for outcome in OUTCOMES:
        metrics.signed_in(outcome)
    metrics.resource_password("succeeded")
    asyncio.run(metrics.refresh())
    return metrics


def sidecar_metrics(directory: Path) -> CollectorRegistry:
    reading = SidecarReading(
        [SiteReading("home", True, 1_700_000_000.0, 1000, 2000, 1)], interface_recoveries=0
    )
    return sidecar_registry(store(directory), lambda: reading)


type Samples = dict[str, list[Any]]


def exposed(registry: CollectorRegistry) -> Samples:
    """Sample name -> its samples, as Prometheus would read them off /metrics."""
    found: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found
