"""The gateway's metrics: what each request became, counted once it is answered, and what the
gateway's services know, read at scrape time.

Per request (`GatewayMetrics.observe`): a dict lookup for the labelled child and an increment;
children are made once per label tuple and kept (the labels are bounded: resources from the
policy, six status classes, six decisions, a dozen reasons, four sign-in methods).

At scrape time (`_ServicesCollector`): the policy's reloads and version, the rate limiter's
storage, the GeoIP caches, and each of the policy's sites, online here or not.
"""

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.geo import GeoSource
from core.metrics.policy import PolicyCollector
from core.policy.store import PolicyStore
from core.ratelimit.limiter import RateLimiter
from core.tunnels import SiteTable

NO_RESOURCE = "-"  # answered before a resource was found: an unknown host, a probe, a bad head
# status // 100 -> its class; 0 (no answer reached the client) and anything odd are "none".
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
# Upstream latency, request sent to response head: from a loopback target (ms) to a slow
# application behind a tunnel (tens of seconds, the default answer timeout).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayServices(NamedTuple):
    """What the scrape reads of the running gateway (its runtime, as of the scrape)."""

    store: PolicyStore
    limiter: RateLimiter
    geo: GeoSource | None
    sites: SiteTable


type ServicesView = Callable[[], GatewayServices | None]


def status_class(status: int) -> str:
    index = status // 100
    return STATUS_CLASSES[index] if 0 < index < len(STATUS_CLASSES) else STATUS_CLASSES[0]


class GatewayMetrics:
    def __init__(self, services: ServicesView) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "warren_requests",
            "Requests answered, by resource, status class and decision.",
            ["resource", "status_class", "decision"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "warren_refusals",
            "Requests Warren answered with its own error page, by the step that refused them.",
            ["reason"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "warren_upstream_latency_seconds",
            "From the request sent to the target to its response head, per resource.",
            ["resource"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.identified = Counter(
            "warren_identified_requests",
            "Requests whose user the gateway identified, by how: session, basic, share, password.",
            ["method"],
            registry=self.registry,
        )
        self.registry.register(PolicyCollector(lambda: _store(services)))
        self.registry.register(_ServicesCollector(services))
        self._requests: dict[tuple[str, int, str], Any] = {}
        self._refusals: dict[str, Any] = {}
        self._latency: dict[str, Any] = {}
        self._identified: dict[str, Any] = {}

    def observe(
        self,
        resource: str,
        status: int,
        decision: str,
        refused_by: str | None,
        upstream_seconds: float | None,
        identified_by: str | None,
    ) -> None:
        """One answered request. `refused_by`: the reason label when Warren refused it;
        `upstream_seconds` when a target answered it."""
        key = (resource, status // 100, decision)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(
                resource, status_class(status), decision
            )
        child.inc()
        if refused_by is not None:
            refusal = self._refusals.get(refused_by)
            if refusal is None:
                refusal = self._refusals[refused_by] = self.refusals.labels(refused_by)
            refusal.inc()
        if upstream_seconds is not None:
            latency = self._latency.get(resource)
            if latency is None:
                latency = self._latency[resource] = self.upstream_latency.labels(resource)
            latency.observe(upstream_seconds)
        if identified_by is not None:
            identified = self._identified.get(identified_by)
            if identified is None:
                identified = self._identified[identified_by] = self.identified.labels(identified_by)
            identified.inc()


def _store(services: ServicesView) -> PolicyStore | None:
    found = services()
    return None if found is None else found.store


class _ServicesCollector(Collector):
    def __init__(self, services: ServicesView) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        if services is None:
            return
        yield from _limiter(services.limiter)
        if services.geo is not None:
            yield from _geo(services.geo)
        online = GaugeMetricFamily(
            "warren_site_online",
            "1 while the site's tunnel is up and this gateway routes to it, else 0.",
            labels=["site"],
        )
        for name in sorted(services.store.current.model.sites):
            route = services.sites.get(name)
            online.add_metric([name], 1 if route is not None and route.online else 0)
        yield online


def _limiter(limiter: RateLimiter) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "warren_ratelimit_storage_up",
        "1 while the rate limits' storage answers, 0 during an outage.",
        value=1 if limiter.healthy else 0,
    )
    yield CounterMetricFamily(
        "warren_ratelimit_storage_errors",
        "Rate-limit decisions made without the storage (by on_storage_error).",
        value=limiter.decided_without_storage,
    )
    yield CounterMetricFamily(
        "warren_ratelimit_storage_outages",
        "Times the rate limits' storage stopped answering.",
        value=limiter.outages,
    )


def _geo(geo: GeoSource) -> Iterator[Metric]:
    """The lookups' LRU caches (geodb's Lookup): each database reload starts a new cache, so
    these counters reset then, as Prometheus counters may (rate() follows a reset)."""
    lookups = CounterMetricFamily(
        "warren_geoip_lookups", "GeoIP lookups, by kind (country, asn).", labels=["kind"]
    )
    hits = CounterMetricFamily(
        "warren_geoip_cache_hits",
        "GeoIP lookups answered from the cache, by kind.",
        labels=["kind"],
    )
    current = getattr(geo, "current", None)
    for kind in ("country", "asn"):
        info = getattr(getattr(current, kind, None), "cache_info", None)
        if info is None:
            continue  # no database of this kind, or no cache (cache_size 0)
        found = info()
        lookups.add_metric([kind], found.hits + found.misses)
        hits.add_metric([kind], found.hits)
    yield lookups
    yield hits
