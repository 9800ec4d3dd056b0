"""The gateway's metrics (addons.metrics) on real gateways under a real workload: scraped from the
metrics listener and read with prometheus_client's own parser, the counters moved by exactly what
the workload did; /healthz and /readyz beside them; a Unix socket; a port already taken."""

import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from demo import processes
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.waiting import eventually

SECRET_COOKIE = "cookie-value-that-must-never-show-9c1e"
SECRET_QUERY = "query-token-that-must-never-show-51aa"


def policy(backend: Backend) -> str:
    return f"""\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, path: "/private/*"}}
      - {{action: allow}}
    rate_limits:
      - {{limit: 3/minute, path: "/limited/*"}}
  down:
    host: down.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {CLOSED_PORT}}}]
"""


CLOSED_PORT = processes.free_port()  # nothing listens there: the target refuses connections


type Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[str, Samples]:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics_gateway(start: GatewayFactory, backend: Backend, **kwargs: str) -> tuple[Gateway, int]:
    port = processes.free_port()
    gateway = start(policy(backend), settings=f"metrics: {{gateway: 127.0.0.1:{port}}}\n", **kwargs)
    eventually(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200)
    return gateway, port


def test_counters_move_by_exactly_what_the_workload_did(
    start_gateway: GatewayFactory, backend: Backend
) -> None:
    gateway, port = metrics_gateway(start_gateway, backend)
    _, before = scrape(port)
    allowed, denied, limited_ok, limited_refused = 5, 3, 3, 2
    with gateway.client() as client:
        host = {"host": "app.example", "cookie": f"warren_session={SECRET_COOKIE}"}
        for _ in range(allowed):
            assert client.get(f"/open?token={SECRET_QUERY}", headers=host).status_code == 200
        for _ in range(denied):
            assert client.get("/private/x", headers=host).status_code == 403
        answers = [client.get("/limited/x", headers=host).status_code for _ in range(5)]
        assert answers == [200] * limited_ok + [429] * limited_refused
        assert client.get("/", headers={"host": "unknown.example"}).status_code == 404
        assert client.get("/", headers={"host": "down.example"}).status_code == 502
    text, after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"resource": "app", "status_class": "2xx", "decision": "allow"}
    assert moved("warren_requests_total", **ok) == allowed + limited_ok
    deny = {"resource": "app", "status_class": "4xx", "decision": "deny"}
    assert moved("warren_requests_total", **deny) == denied
    limited = {"resource": "app", "status_class": "4xx", "decision": "rate-limited"}
    assert moved("warren_requests_total", **limited) == limited_refused
    unknown = {"resource": "-", "status_class": "4xx", "decision": "none"}
    assert moved("warren_requests_total", **unknown) == 1
    assert moved("warren_refusals_total", reason="rules") == denied
    assert moved("warren_refusals_total", reason="ratelimit") == limited_refused
    assert moved("warren_refusals_total", reason="routing") == 1
    down = {"resource": "down", "status_class": "5xx", "decision": "pass"}  # no rule matched
    assert moved("warren_requests_total", **down) == 1
    assert moved("warren_refusals_total", reason="upstream") == 1
    assert moved("warren_upstream_latency_seconds_count", resource="down") == 0
    assert moved("warren_upstream_latency_seconds_count", resource="app") == allowed + limited_ok
    assert value(after, "warren_policy_reloads_total") == 0
    assert SECRET_COOKIE not in text
    assert SECRET_QUERY not in text

    # A policy that does not validate: the reload is refused and counted, the old one serves.
    gateway.policy.write_text("version: 1\nresources: {app: {host: [}\n")

    def refused() -> bool:
        return value(scrape(port)[1], "warren_policy_reload_failures_total") == 1

    eventually(refused)
    _, failed = scrape(port)
    assert value(failed, "warren_policy_last_reload_failed") == 1
    assert value(failed, "warren_policy_reloads_total") == 0
    assert gateway.get("app.example", "/open").status_code == 200

    # `warren status --json`: the same reply, as JSON; the human one says "none", never "None".
    shown = subprocess.run(
        [*processes.warren("status", "--json"), "--config", str(gateway.config)],
        capture_output=True,
        text=True,
        check=True,
    )
    reply = json.loads(shown.stdout)
    assert reply["sidecar"] is None
    assert reply["gateway"]["failed_reloads"] == 1
    versions = {dict(labels)["digest"] for name, labels in failed if name == "warren_policy_info"}
    assert versions == {reply["gateway"]["digest"]}  # the version running, not the refused one
    assert reply["gateway"]["last_error"].startswith(str(gateway.policy))
    human = subprocess.run(
        [*processes.warren("status"), "--config", str(gateway.config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "failed_reloads  1" in human
    assert not any(line.endswith(" None") for line in human.splitlines())


def test_health_endpoints_and_methods(start_gateway: GatewayFactory, backend: Backend) -> None:
    _, port = metrics_gateway(start_gateway, backend)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/healthz").text == "ok\n"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200, ready.text
    assert '"status": "ok"' in ready.text
    head = httpx.head(f"{base}/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert httpx.get(f"{base}/nothing").status_code == 404
    posted = httpx.post(f"{base}/metrics")
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("kind", ["warren", "mitmdump"])
def test_metrics_on_a_unix_socket(
    start_gateway: GatewayFactory, backend: Backend, tmp_path: Path, kind: str
) -> None:
    """Under `warren gateway` and under mitmdump with the pack as a script alike."""
    path = tmp_path / "metrics.sock"
    gateway = start_gateway(
        policy(backend), kind=kind, settings=f"metrics: {{gateway: 'unix:{path}'}}\n"
    )
    eventually(path.is_socket)
    assert path.stat().st_mode & 0o777 == 0o660
    assert gateway.get("app.example", "/open").status_code == 200
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://metrics") as client:

        def counted() -> bool:
            families = text_string_to_metric_families(client.get("/metrics").text)
            return any(
                sample.name == "warren_requests_total" and sample.value == 1
                for family in families
                for sample in family.samples
            )

        eventually(counted)
        assert client.get("/healthz").text == "ok\n"


def test_a_taken_port_is_a_warning_and_the_gateway_serves(
    start_gateway: GatewayFactory, backend: Backend
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = start_gateway(
            policy(backend), settings=f"metrics: {{gateway: 127.0.0.1:{port}}}\n"
        )
        assert gateway.get("app.example", "/open").status_code == 200
        eventually(lambda: "metrics listener" in gateway.logs())
        assert gateway.process.poll() is None
        assert "not started" in gateway.logs()
        assert gateway.get("app.example", "/open").status_code == 200
