"""The node sidecar's metrics listener (sidecar.metrics) on a real `warren sidecar` in a network
namespace: each of the policy's sites, the reloads, and /readyz while its interface is up. The
listener is a Unix socket here, which the test reaches from outside the namespace."""

import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from demo import processes
from tests.sidecar.test_service import digest, policy, within
from tests.support.netlab import Lab


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }


def test_the_sidecar_serves_its_metrics_and_readiness(lab: Lab, tmp_path: Path) -> None:
    metrics = tmp_path / "sidecar-metrics.sock"
    (tmp_path / "policy.yaml").write_text(policy("home"))
    (tmp_path / "warren.yaml").write_text(
        "policy_file: policy.yaml\nstate_dir: state\nreload_poll: 1h\n"
        f"wireguard: {{interface: {lab.interface('n')}, subnet: 100.89.0.0/24, isolate: false}}\n"
        f"metrics: {{sidecar: 'unix:{metrics}'}}\n"
    )
    log = tmp_path / "sidecar.log"
    process = lab.namespace("n").start(
        processes.warren("sidecar", "--config", str(tmp_path / "warren.yaml")), log=log
    )
    try:
        within(30, metrics.is_socket)
        transport = httpx.HTTPTransport(uds=str(metrics))
        with httpx.Client(transport=transport, base_url="http://sidecar", timeout=5) as client:
            assert client.get("/healthz").text == "ok\n"
            assert client.get("/readyz").status_code == 200  # the interface is up
            first = scrape(client)
            home = frozenset({("site", "home")})
            assert first[("warren_site_online", home)] == 0  # no site agent registered
            assert first[("warren_site_received_bytes_total", home)] == 0
            assert first[("warren_site_recoveries_total", home)] == 0
            assert ("warren_site_handshake_age_seconds", home) not in first  # never
            assert first[("warren_policy_reloads_total", frozenset())] == 0

            second = policy("home", "office")
            (tmp_path / "policy.yaml").write_text(second)
            process.send_signal(signal.SIGHUP)
            within(10, lambda: f"policy {digest(second)} loaded" in log.read_text())
            after = scrape(client)
            assert after[("warren_policy_reloads_total", frozenset())] == 1
            assert after[("warren_site_online", frozenset({("site", "office")}))] == 0
            info = frozenset({("digest", digest(second))})
            assert after[("warren_policy_info", info)] == 1
    finally:
        processes.stop(process)
    assert process.returncode == 0
    assert not metrics.exists()
