"""core.metrics.sidecar: each site's reading as the scrape exposes it."""

from pathlib import Path

from tests.core.metrics.registries import exposed, sidecar_metrics


def test_site_readings(tmp_path: Path) -> None:
    samples = exposed(sidecar_metrics(tmp_path))
    home = {"site": "home"}
    assert [s.value for s in samples["warren_site_online"] if s.labels == home] == [1]
    assert samples["warren_site_received_bytes_total"][0].value == 1000
    assert samples["warren_site_sent_bytes_total"][0].value == 2000
    assert samples["warren_site_recoveries_total"][0].value == 1
    assert samples["warren_site_handshake_age_seconds"][0].value > 0
    assert samples["warren_tunnel_interface_recoveries_total"][0].value == 0
