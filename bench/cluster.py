"""Several nodes: a session from another node, failover, a pushed policy, a relayed request.

Run in network namespaces (tests.support.clusterlab: user, node a, node b, site, Redis), as root:
1. requests/s with a session minted on node a, verified on b vs on a itself (target >= 0.98);
   each node in front of a backend on its own loopback, so only the verification differs
2. failover: a client that tries a, then b when a refuses (as round-robin DNS clients do); a's
   gateway and sidecar are killed; the time from the kill to the first answer through b, and the
   requests that failed meanwhile in a way the client would not retry (target: none, < 5 s)
3. `warren policy push` of a 10 000-rule policy: time until every node serves it (< 1.5 s)
4. a request relayed via the other node (the site's link to b cut) vs served by b through its
   own tunnel (reported)
"""

import asyncio
import statistics
import subprocess
import threading
import time
import uuid
from typing import Any

import httpx

from bench import common
from bench.tunnel import missing
from demo import processes
from tests.support.clusterlab import GATEWAY_PORT, ClusterLab, portal_resource
from tests.support.netlab import Lab
from tests.support.tunnellab import secret_and_hash
from tests.support.waiting import eventually

BACKEND = 8000  # on the site, through the tunnels
LOCAL_BACKEND = 8001  # on each node's own loopback
CONNECTIONS = 8  # more starves the tunnel probes on a two-core machine (a site falsely offline)


def policy(secret_hash: str, rules: int = 0, marker: str = "none") -> str:
    lines = [
        "version: 1",
        f'sites:\n  home: {{secret_sha256: "{secret_hash}"}}',
        "resources:",
        portal_resource().rstrip("\n"),
        "  app:\n    host: app.test\n    auth: public",
        f"    targets: [{{site: home, host: 127.0.0.1, port: {BACKEND}}}]",
        "  private:\n    host: private.test",
        f"    targets: [{{host: 127.0.0.1, port: {LOCAL_BACKEND}}}]",
        "  marker:\n    host: marker.test\n    auth: public",
        f"    targets: [{{host: 127.0.0.1, port: {LOCAL_BACKEND}}}]",
        f"    rules: [{{action: deny, path: /{marker}}}]",
    ]
    if rules:
        lines.append("  big:\n    host: big.test\n    auth: public")
        lines.append(f"    targets: [{{host: 127.0.0.1, port: {LOCAL_BACKEND}}}]")
        lines.append("    rules:")
        lines += [f"      - {{action: deny, path: /r{n}/*}}" for n in range(rules)]
    return "\n".join(lines) + "\n"


def run(quick: bool) -> str:
    reason = missing()
    if reason is not None:
        return f"skipped: the cluster benchmarks {reason}"
    lab = Lab()
    try:
        cluster = ClusterLab.build(lab, common.workdir("cluster"))
        results = measure(cluster, quick)
    finally:
        lab.close()
    common.save("cluster", results)
    return report(results)


def measure(cluster: ClusterLab, quick: bool) -> dict[str, Any]:
    secret, secret_hash = secret_and_hash()
    cluster.start_redis()
    cluster.write_nodes(policy(secret_hash), probe_interval="2s")
    cluster.add_user("alice")
    for name, node in cluster.nodes.items():
        node.namespace.start(
            processes.backend(LOCAL_BACKEND, f"local-{name}"),
            log=cluster.directory / f"backend-{name}.log",
        )
        cluster.start_node(name)
    cluster.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
    cluster.start_agent("home", secret, ("a",))
    for name in cluster.nodes:
        if not eventually(lambda name=name: _served(cluster, name), timeout=60):  # type: ignore[misc]
            raise RuntimeError(f"node {name} does not serve the site:\n{cluster.logs()}")
    return {
        "verify": verify_elsewhere(cluster, quick),
        "push": push(cluster, secret_hash, quick),
        "relay": relay(cluster, quick),
        "failover": failover(cluster),  # last: it kills node a
    }


def _served(cluster: ClusterLab, node: str, host: str = "app.test") -> bool:
    tag = uuid.uuid4().hex[:10]
    try:
        response = cluster.request(node, host, f"/{tag}")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _load(cluster: ClusterLab, node: str, host: str, seconds: float, cookie: str = "") -> float:
    result = common.wrk(
        GATEWAY_PORT,
        host,
        "/bench",
        seconds,
        connections=CONNECTIONS,
        address=cluster.nodes[node].address,
        within=cluster.user.command([]),
        headers=[f"Cookie: {cookie}"] if cookie else [],
    )
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"{node} {host}: failed requests during the benchmark: {result}")
    return result.requests_per_second


def verify_elsewhere(cluster: ClusterLab, quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 4) if quick else (5, 8)
    with cluster.from_user():
        browser = cluster.sign_in("a", "private.test", "alice")
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies("private.test").items())
    for node in ("a", "b"):  # warm-up: each node's verification cache
        _load(cluster, node, "private.test", 1, cookie)
    comparison = common.interleave(
        "verify",
        (
            "verified on a (minted there)",
            lambda: _load(cluster, "a", "private.test", seconds, cookie),
        ),
        ("verified on b", lambda: _load(cluster, "b", "private.test", seconds, cookie)),
        rounds,
    )
    return {
        "on_a_rps": comparison.baseline_rps,
        "on_b_rps": comparison.candidate_rps,
        "ratio": comparison.ratio,
    }


def push(cluster: ClusterLab, secret_hash: str, quick: bool) -> dict[str, Any]:
    """Each round pushes the 10k-rule policy with a new path denied on marker.test and times
    until both nodes deny it: from the document being stored (what the nodes do), and for the
    whole `warren policy push` command (its start-up and validation of 10 000 rules included)."""
    stored, command = [], []
    for index in range(4 if quick else 8):
        marker = f"m{index}{uuid.uuid4().hex[:6]}"
        text = policy(secret_hash, rules=10_000, marker=marker)
        if index % 2:
            command.append(_push_command(cluster, text, marker, index))
        else:
            stored.append(_push_stored(cluster, text, marker))
    return {
        "from_stored_seconds": stored,
        "median_from_stored_seconds": statistics.median(stored),
        "command_seconds": command,
        "median_command_seconds": statistics.median(command),
    }


def _push_stored(cluster: ClusterLab, text: str, marker: str) -> float:
    from core.cluster.documents import Kind
    from core.cluster.documents import push as store
    from core.storage import redis_client

    async def pushed() -> None:
        redis = redis_client(cluster.storage)
        try:
            await store(redis, Kind.POLICY, text, "bench")
        finally:
            await redis.aclose()

    with cluster.from_user():
        started = time.monotonic()
        asyncio.run(pushed())
        return _until_denied(cluster, marker, started)


def _push_command(cluster: ClusterLab, text: str, marker: str, index: int) -> float:
    """From starting `warren policy push` (its start-up and the validation of 10 000 rules
    included) until both nodes serve it; the command itself goes on to wait for the nodes'
    heartbeats to confirm, which is not the nodes' delay."""
    node_a = cluster.nodes["a"]
    pushed = cluster.directory / f"push-{index}.yaml"
    pushed.write_text(text)
    args = [*processes.warren("policy", "push", str(pushed)), "--config", str(node_a.config)]
    started = time.monotonic()
    command = subprocess.Popen(
        node_a.namespace.command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    served = _until_denied(cluster, marker, started)
    output, _ = command.communicate(timeout=120)
    if command.returncode != 0:
        raise RuntimeError(f"warren policy push failed: {output.decode(errors='replace')}")
    return served


def _until_denied(cluster: ClusterLab, marker: str, started: float) -> float:
    waiting = {"a", "b"}
    while waiting and time.monotonic() - started < 30:
        for node in list(waiting):
            if _status(cluster, node, "marker.test", f"/{marker}") == 403:
                waiting.discard(node)
        time.sleep(0.01)
    if waiting:
        raise RuntimeError(f"nodes {waiting} never served the pushed policy")
    return time.monotonic() - started


def _status(cluster: ClusterLab, node: str, host: str, path: str) -> int:
    try:
        return cluster.request(node, host, path, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def relay(cluster: ClusterLab, quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 3) if quick else (5, 5)
    direct = [_load(cluster, "b", "app.test", seconds) for _ in range(rounds)]
    cluster.cut_site_from("b")
    try:
        if not eventually(lambda: not cluster.site_online("b", "home"), timeout=30):
            raise RuntimeError("the site's link to b never went down")
        time.sleep(1)  # b's gateway follows its sidecar's sites.json within reload_poll
        relayed = [_load(cluster, "b", "app.test", seconds) for _ in range(rounds)]
    finally:
        cluster.restore_site_to("b")
    if not eventually(lambda: cluster.site_online("b", "home"), timeout=60):
        raise RuntimeError("the site's link to b never came back")
    return {
        "direct_rps": direct,
        "relayed_rps": relayed,
        "ratio": statistics.median(relayed) / statistics.median(direct),
    }


def failover(cluster: ClusterLab) -> dict[str, Any]:
    """A client retrying the next address, as browsers do with round-robin DNS: a refused or
    reset connection to a goes to b at once; an answer from either is final."""
    outcomes: list[tuple[float, str, int]] = []  # (time, node, status; 0: not retried error)
    stop = threading.Event()

    def client() -> None:
        with cluster.from_user(), httpx.Client(timeout=5) as http:
            while not stop.is_set():
                outcomes.append(_one(http, cluster))

    worker = threading.Thread(target=client)
    worker.start()
    time.sleep(2)
    killed = time.monotonic()
    cluster.kill_node("a")
    time.sleep(5)
    stop.set()
    worker.join()
    after = [entry for entry in outcomes if entry[0] >= killed]
    first_b = next((t for t, node, status in after if node == "b" and status == 200), None)
    failed = [entry for entry in after if entry[2] != 200]
    return {
        "requests_after_kill": len(after),
        "failed_after_kill": len(failed),
        "seconds_to_first_success_through_b": None if first_b is None else first_b - killed,
    }


def _one(http: httpx.Client, cluster: ClusterLab) -> tuple[float, str, int]:
    tag = uuid.uuid4().hex[:8]
    for node in ("a", "b"):
        url = f"http://{cluster.nodes[node].address}:{GATEWAY_PORT}/{tag}"
        try:
            status = http.get(url, headers={"host": "app.test"}).status_code
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
            continue  # refused or reset before an answer: a client retries the next address
        except httpx.TimeoutException:
            return time.monotonic(), node, 0
        return time.monotonic(), node, status
    return time.monotonic(), "none", 0


def report(results: dict[str, Any]) -> str:
    verify, push_, relay_, failover_ = (results[k] for k in ("verify", "push", "relay", "failover"))
    seconds = failover_["seconds_to_first_success_through_b"]
    rows: list[list[object]] = [
        [
            "session from a verified on b vs on a",
            f"{verify['ratio']:.3f}",
            ">= 0.98",
            _versus(verify["on_b_rps"], verify["on_a_rps"]),
        ],
        [
            "failover: kill a, first success via b",
            "never" if seconds is None else f"{seconds:.3f} s",
            "< 5 s",
            f"{failover_['failed_after_kill']} of {failover_['requests_after_kill']} failed",
        ],
        [
            "policy push, 10k rules, live on both",
            f"{push_['median_from_stored_seconds']:.3f} s",
            "< 1.5 s",
            f"stored push; from the command's start {push_['median_command_seconds']:.3f} s",
        ],
        [
            "relayed via a vs b's own tunnel",
            f"{relay_['ratio']:.3f}",
            "reported",
            _versus(relay_["relayed_rps"], relay_["direct_rps"]),
        ],
    ]
    return common.table(rows, ["benchmark", "result", "target", "detail"])


def _versus(candidate: list[float], baseline: list[float]) -> str:
    return f"{statistics.median(candidate):.0f} vs {statistics.median(baseline):.0f} req/s"
