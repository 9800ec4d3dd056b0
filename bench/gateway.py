"""Gateway core: throughput, rule-count scaling, decision time, hot reload under load.

1. `warren gateway` with a 10 000-rule policy vs bare `mitmdump --mode reverse:` (target >= 1.5x)
2. that policy vs an empty policy on `warren gateway` (target >= 0.95)
3. median decision time at 1k, 10k, 100k rules (target <= 20 us at 100k, sub-linear)
4. reloading a 100 000-rule file: validate-and-swap time (target < 1 s) and failed requests
   over 20 reloads under load (target 0)
5. metrics and the access log on vs both off, the same policy (target >= 0.95), with the
   gateway's CPU time per request for each

Runs 1-4 turn metrics and the access log off (`QUIET`), so they measure what they always did;
run 5 is the one that measures them.
"""

import os
import random
import statistics
import sys
import threading
import time
import urllib.request
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bench import common
from core import control
from core.ipsets import parse_address
from core.paths import canonicalize
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.rules import Facts
from demo import processes

HOST = "app.example"
PATH = "/bench/item"
# What runs 1-4 measure without: no metrics listener, no access log line per request.
QUIET = "metrics: {gateway: off}\nlogging: {access: off}\n"


def policy_text(rules: int, backend_port: int, seed: int = 7) -> str:
    """Half CIDR rules, half path rules (subtree, exact and glob), none matching the benchmark
    request, then a final allow: every request walks the whole index."""
    rng = random.Random(seed)
    lines = []
    for index in range(rules):
        if index % 2:
            prefix = rng.choice((16, 24, 24, 28, 32))
            address = IPv4Address(rng.randrange(10 << 24, 11 << 24))
            network = f"{IPv4Address(int(address) >> (32 - prefix) << (32 - prefix))}/{prefix}"
            lines.append(f"{{action: deny, cidr: [{network}]}}")
        else:
            kind = index % 6
            if kind == 0:
                path = f"/p{index}/*"
            elif kind == 2:
                path = f"/api/v{index}/users"
            else:
                path = f"/files{index}/*.tmp"
            lines.append(f'{{action: deny, path: "{path}", method: [POST, PUT]}}')
    lines.append("{action: allow}")
    return common.public_resource_policy(HOST, backend_port, lines)


def _settings(directory: Path, port: int, extra: str = "") -> Path:
    path = directory / "warren.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\nreload_poll: 1h\n"
        + extra
    )
    return path


def warren_gateway(directory: Path, policy: str, settings: str = "") -> tuple[list[str], int]:
    directory.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    (directory / "policy.yaml").write_text(policy)
    config = _settings(directory, port, settings)
    return processes.warren("gateway", "--config", str(config)), port


def bare_mitmdump(directory: Path, backend_port: int) -> tuple[list[str], int]:
    directory.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    mitmdump = str(Path(sys.executable).parent / "mitmdump")
    return [
        mitmdump,
        "--mode",
        f"reverse:http://127.0.0.1:{backend_port}@127.0.0.1:{port}",
        "--set",
        f"confdir={directory / 'mitm'}",
        "-q",
    ], port


def throughput(quick: bool) -> dict[str, object]:
    seconds, rounds = (3, 4) if quick else (5, 8)
    base = common.workdir("throughput")
    with common.backend() as backend_port:
        variants = {
            "mitmdump": bare_mitmdump(base / "mitmdump", backend_port),
            "warren-10k": warren_gateway(base / "w10k", policy_text(10_000, backend_port), QUIET),
            "warren-empty": warren_gateway(base / "wempty", policy_text(0, backend_port), QUIET),
        }
        rps: dict[str, list[float]] = {name: [] for name in variants}
        started = []
        try:
            for name, (args, port) in variants.items():
                context = common.running(args, port, base / f"{name}.log")
                context.__enter__()
                started.append(context)
            for _name, (_args, port) in variants.items():
                common.wrk(port, HOST, PATH, seconds=1)  # warm-up
            order = list(variants.items())
            for index in range(rounds):
                # Every other round runs backwards, so a drift in the machine's load during the
                # run weighs on every variant alike (as common.interleave does for pairs).
                for name, (_args, port) in order if index % 2 == 0 else order[::-1]:
                    load = common.wrk(port, HOST, PATH, seconds=seconds)
                    if load.non_2xx or load.socket_errors:
                        raise RuntimeError(f"{name} failed requests during the benchmark: {load}")
                    rps[name].append(load.requests_per_second)
        finally:
            for context in started:
                context.__exit__(None, None, None)

    def ratio(candidate: str, baseline: str) -> float:
        return statistics.median(c / b for c, b in zip(rps[candidate], rps[baseline], strict=True))

    return {
        "rps": rps,
        "median_rps": {name: statistics.median(values) for name, values in rps.items()},
        "ratio_10k_vs_mitmdump": ratio("warren-10k", "mitmdump"),
        "ratio_10k_vs_empty": ratio("warren-10k", "warren-empty"),
        "ratio_empty_vs_mitmdump": ratio("warren-empty", "mitmdump"),
    }


def decision_time(quick: bool) -> dict[str, Any]:
    sizes = (1_000, 10_000, 100_000)
    rng = random.Random(3)
    samples = []
    for index in range(2000):
        ip = parse_address(str(IPv4Address(rng.randrange(9 << 24, 12 << 24))))
        path = rng.choice([PATH, f"/p{index * 6}/x", f"/api/v{index}/users", "/files2/a.tmp", "/"])
        samples.append((ip, path, rng.choice(["GET", "POST"])))
    results: dict[str, Any] = {}
    for size in sizes:
        policy = parse_policy(policy_text(size, 1), Capabilities())
        resource = policy.resources["app"]
        facts = [Facts(ip, canonicalize(path).match, method) for ip, path, method in samples]
        batches = []
        for _ in range(5 if quick else 15):
            started = time.perf_counter_ns()
            for fact in facts:
                policy.decide(resource, fact)
            batches.append((time.perf_counter_ns() - started) / len(facts) / 1000)
        intake = []
        for _ in range(3 if quick else 7):
            started = time.perf_counter_ns()
            for ip, path, method in samples:
                found = policy.resource_for("App.Example:443")
                assert found is not None
                policy.decide(found, Facts(ip, canonicalize(path).match, method))
            intake.append((time.perf_counter_ns() - started) / len(samples) / 1000)
        results[str(size)] = {
            "decide_us": statistics.median(batches),
            "host_path_and_decide_us": statistics.median(intake),
        }
    results["growth_100k_over_1k"] = (
        results[str(sizes[-1])]["decide_us"] / results[str(sizes[0])]["decide_us"]
    )
    return results


def hot_reload(quick: bool) -> dict[str, object]:
    """20 reloads with the gateway idle (the time to validate and swap), then 20 while wrk keeps
    it busy (failed requests; the reload shares the interpreter with requests, so it is slower)."""
    reloads = 20
    base = common.workdir("reload")
    with common.backend() as backend_port:
        texts = [policy_text(100_000, backend_port, seed=seed) for seed in (11, 12)]
        args, port = warren_gateway(base, texts[0], QUIET)
        with common.running(args, port, base / "gateway.log"):
            socket = base / "state" / "gateway.sock"
            deadline = time.monotonic() + 60
            while not socket.exists():  # created by the running hook, just after the listener
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no control socket at {socket}")
                time.sleep(0.05)

            def reload(index: int) -> float:
                (base / "policy.yaml").write_text(texts[(index + 1) % 2])
                reply = control.call(socket, "reload", timeout=60)
                if not reply["ok"]:
                    raise RuntimeError(f"reload refused: {reply}")
                return float(reply["seconds"])

            idle = [reload(index) for index in range(reloads)]
            common.wrk(port, HOST, PATH, seconds=1)
            loads: list[common.Load] = []
            done = threading.Event()

            def load() -> None:
                while not done.is_set():
                    loads.append(common.wrk(port, HOST, PATH, seconds=2, connections=8))

            worker = threading.Thread(target=load)
            worker.start()
            try:
                busy = [reload(index) for index in range(reloads)]
            finally:
                done.set()
                worker.join()
    return {
        "reloads": reloads,
        "validate_and_swap_s": {"median": statistics.median(idle), "max": max(idle), "all": idle},
        "under_load_s": {"median": statistics.median(busy), "max": max(busy), "all": busy},
        "requests_during_reloads": sum(load.requests for load in loads),
        "failed_requests": sum(load.non_2xx + load.socket_errors for load in loads),
        "p99_latency_ms_worst_window": max(load.latency_p99_ms for load in loads),
    }


def cpu_seconds(pid: int) -> float:
    """User and system time the process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def observability(quick: bool) -> dict[str, object]:
    """The same gateway and workload (a 100-rule policy, every request allowed and forwarded)
    with Prometheus metrics on and an access log line per request to a file, against both off;
    each run of it between two runs of the baseline (common.interleave). The metrics are scraped
    once per round, as Prometheus would, so their exposition is in the measured cost too."""
    seconds, rounds = (3, 4) if quick else (5, 10)
    base = common.workdir("observe")
    metrics_port = processes.free_port()
    on_settings = (
        f"metrics: {{gateway: 127.0.0.1:{metrics_port}}}\n"
        f"logging: {{access: all, access_file: {base / 'on' / 'access.log'}}}\n"
    )
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with common.backend() as backend_port:
        policy = policy_text(100, backend_port)
        off_args, off_port = warren_gateway(base / "off", policy, QUIET)
        on_args, on_port = warren_gateway(base / "on", policy, on_settings)
        with (
            common.running(off_args, off_port, base / "off.log") as off_process,
            common.running(on_args, on_port, base / "on.log") as on_process,
        ):

            def measure(label: str, port: int, pid: int) -> float:
                before = cpu_seconds(pid)
                load = common.wrk(port, HOST, PATH, seconds=seconds)
                if label == "on":
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
                    ) as scraped:
                        scraped.read()
                used = cpu_seconds(pid) - before
                if load.non_2xx or load.socket_errors:
                    raise RuntimeError(f"{label} failed requests during the benchmark: {load}")
                cpu[label].append(used / max(1, load.requests) * 1e6)
                return load.requests_per_second

            common.wrk(off_port, HOST, PATH, seconds=1)  # warm-up
            common.wrk(on_port, HOST, PATH, seconds=1)
            comparison = common.interleave(
                "metrics and access log",
                ("off", lambda: measure("off", off_port, off_process.pid)),
                ("on", lambda: measure("on", on_port, on_process.pid)),
                rounds,
            )
    logged = base / "on" / "access.log"
    return {
        "comparison": comparison,
        "ratio": comparison.ratio,
        "median_rps": {
            "off": statistics.median(comparison.baseline_rps),
            "on": statistics.median(comparison.candidate_rps),
        },
        "cpu_us_per_request": {label: statistics.median(v) for label, v in cpu.items()},
        "cpu_us_all": cpu,
        "access_log_written": logged.exists() and logged.stat().st_size > 0,
    }


def run(quick: bool) -> str:
    results: dict[str, dict[str, Any]] = {
        "throughput": throughput(quick),
        "decision_time": decision_time(quick),
        "hot_reload": hot_reload(quick),
        "observability": observability(quick),
    }
    common.save("gateway", results)
    return report(results)


def report(results: dict[str, dict[str, Any]]) -> str:
    t, d, r = results["throughput"], results["decision_time"], results["hot_reload"]
    o = results["observability"]
    rps, swap, busy = t["median_rps"], r["validate_and_swap_s"], r["under_load_s"]
    rows = [
        ["1. warren gateway, 10k rules vs bare mitmdump", f"{t['ratio_10k_vs_mitmdump']:.2f}x",
         ">= 1.5x", f"{rps['warren-10k']:.0f} vs {rps['mitmdump']:.0f} req/s"],
        ["2. 10k rules vs empty policy (warren gateway)", f"{t['ratio_10k_vs_empty']:.3f}",
         ">= 0.95", f"{rps['warren-10k']:.0f} vs {rps['warren-empty']:.0f} req/s"],
    ]  # fmt: skip
    for size in ("1000", "10000", "100000"):
        entry = d[size]
        rows.append(
            [
                f"3. median decision time, {int(size):,} rules",
                f"{entry['decide_us']:.2f} us",
                "<= 20 us at 100k",
                f"with host lookup and path: {entry['host_path_and_decide_us']:.2f} us",
            ]
        )
    rows += [
        ["3. growth 1k -> 100k rules", f"{d['growth_100k_over_1k']:.2f}x",
         "sub-linear (100x rules)", ""],
        ["4. reload 100k rules: validate and swap", f"{swap['median']:.3f} s (median)", "< 1 s",
         f"max {swap['max']:.3f} s over {r['reloads']} reloads, gateway idle"],
        ["4. failed requests, 20 reloads under load", str(r["failed_requests"]), "0",
         f"of {r['requests_during_reloads']} requests; reloads took "
         f"{busy['median']:.2f} s (median) sharing the core with requests"],
        ["5. metrics and access log on vs off", f"{o['ratio']:.3f}", ">= 0.95",
         f"{o['median_rps']['on']:.0f} vs {o['median_rps']['off']:.0f} req/s; CPU "
         f"{o['cpu_us_per_request']['on']:.0f} vs {o['cpu_us_per_request']['off']:.0f} us/request"
         + ("" if o["access_log_written"] else " (no access log was written)")],
    ]  # fmt: skip
    return common.table(rows, ["benchmark", "result", "target", "detail"])
