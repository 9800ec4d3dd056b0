"""core.metrics.gateway over real services: requests, refusals and latency as observed, and what
the scrape reads of the policy, the rate limiter's storage, GeoIP's caches and the sites."""

from pathlib import Path

from core.metrics.gateway import status_class
from tests.core.metrics.registries import Samples, exposed, gateway_metrics


def value(samples: Samples, name: str, **labels: str) -> float:
    return float(sum(s.value for s in samples.get(name, []) if s.labels == labels))


def test_observed_requests_and_what_the_scrape_reads(tmp_path: Path) -> None:
    metrics, limiter = gateway_metrics(tmp_path)
    metrics.observe("app", 403, "deny", "rules", None, None)
    metrics.observe("app", 403, "deny", "rules", None, None)
    limiter.decided_without_storage += 3
    samples = exposed(metrics.registry)
    ok = {"resource": "app", "status_class": "2xx", "decision": "allow"}
    assert value(samples, "warren_requests_total", **ok) == 1
    deny = {"resource": "app", "status_class": "4xx", "decision": "deny"}
    assert value(samples, "warren_requests_total", **deny) == 2
    assert value(samples, "warren_refusals_total", reason="rules") == 2
    assert value(samples, "warren_refusals_total", reason="routing") == 1
    assert value(samples, "warren_upstream_latency_seconds_count", resource="app") == 1
    assert value(samples, "warren_upstream_latency_seconds_bucket", resource="app", le="0.025") == 1
    assert value(samples, "warren_identified_requests_total", method="session") == 1
    assert value(samples, "warren_site_online", site="home") == 1
    assert value(samples, "warren_site_online", site="cabin") == 0
    assert value(samples, "warren_ratelimit_storage_up") == 1
    assert value(samples, "warren_ratelimit_storage_errors_total") == 3
    assert value(samples, "warren_geoip_lookups_total", kind="country") == 3
    assert value(samples, "warren_geoip_cache_hits_total", kind="country") == 1
    assert value(samples, "warren_geoip_lookups_total", kind="asn") == 1
    assert value(samples, "warren_policy_reloads_total") == 0
    [info] = samples["warren_policy_info"]
    assert len(info.labels["digest"]) == 12


def test_status_classes() -> None:
    assert [status_class(s) for s in (101, 200, 302, 404, 503, 0, 999)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "none",
        "none",
    ]
