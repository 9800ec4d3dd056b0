"""Rate limiting: cost per check in memory and in Redis; gateway throughput with three limits.

1. cost of one check (RateLimiter.hit) per strategy, memory:// and redis:// (a redis-server on
   loopback started here); baseline: one redis-py PING round trip, measured in the same run
2. `warren gateway` with three limits on every request vs no limits, memory storage
   (target >= 0.95); the same with Redis storage, for information. Requests per second, and
   the gateway's CPU time per request, which other load on the machine disturbs less
"""

import asyncio
import contextlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common
from core.ratelimit.limiter import RateLimiter
from core.ratelimit.spec import Strategy, parse_rate
from demo import processes

HOST = "app.example"
PATH = "/bench/item"
STRATEGIES: tuple[Strategy, ...] = ("fixed", "moving", "sliding")
CLIENTS = 1000  # distinct keys, round-robin: counters of many clients, as on a real node


def policy_text(backend_port: int, limited: bool) -> str:
    """Three limits every request counts against, as an admin would write them (the default
    strategy; a global one per ip, two of the resource's), never reached."""
    global_limits, resource_limits = "", ""
    if limited:
        global_limits = "rate_limits:\n  - {limit: 100000/second, per: ip}\n"
        resource_limits = (
            "    rate_limits:\n"
            "      - {limit: 1000000/minute, per: resource}\n"
            '      - {limit: 10000/second, per: "header:x-api-key"}\n'
        )
    return (
        f"version: 1\n{global_limits}resources:\n  app:\n    host: {HOST}\n    auth: public\n"
        f"    targets: [{{host: 127.0.0.1, port: {backend_port}}}]\n{resource_limits}"
    )


def gateway(directory: Path, policy: str, storage: str) -> tuple[list[str], int]:
    directory.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    (directory / "policy.yaml").write_text(policy)
    (directory / "warren.yaml").write_text(
        f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\n"
        f"reload_poll: 1h\nstorage: {storage}\n"
    )
    return processes.warren("gateway", "--config", str(directory / "warren.yaml")), port


class Redis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = processes.free_port()

    def __enter__(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = processes.start(common.pinned(args, common.LOAD_CORE))
        processes.wait_for_port(self.port, self.process)
        return f"redis://127.0.0.1:{self.port}/0"

    def __exit__(self, *_: object) -> None:
        processes.stop(self.process)


async def _check_cost(storage: str, strategy: Strategy, checks: int, stats: bool) -> float:
    limiter = RateLimiter(storage)
    rate = parse_rate("1000000/minute", strategy)
    keys = [f"client-{index}" for index in range(CLIENTS)]
    try:
        for key in keys:  # warm: connections made, scripts loaded, keys present
            await limiter.hit(rate, "bench", key)
        started = time.perf_counter()
        for index in range(checks):
            decision = await limiter.hit(rate, "bench", keys[index % CLIENTS], stats=stats)
            if not decision.allowed or decision.storage_failed:
                raise RuntimeError(f"the benchmark limit refused a check: {decision}")
        return (time.perf_counter() - started) / checks * 1e6
    finally:
        await limiter.close()


async def _ping_cost(url: str, pings: int) -> float:
    from redis.asyncio import Redis as Client

    client = Client.from_url(url)
    try:
        await client.ping()
        started = time.perf_counter()
        for _ in range(pings):
            await client.ping()
        return (time.perf_counter() - started) / pings * 1e6
    finally:
        await client.aclose()


def check_cost(quick: bool) -> dict[str, object]:
    rounds, checks = (3, 5_000) if quick else (7, 20_000)
    results: dict[str, object] = {}
    with Redis(common.workdir("ratelimit-redis")) as redis_url:
        for name, storage, count in (
            ("memory", "memory://", checks),
            ("redis", redis_url, checks // 5),
        ):
            for strategy in STRATEGIES:
                samples = [
                    asyncio.run(_check_cost(storage, strategy, count, False)) for _ in range(rounds)
                ]
                results[f"{name}/{strategy}"] = statistics.median(samples)
            samples = [
                asyncio.run(_check_cost(storage, "sliding", count, True)) for _ in range(rounds)
            ]
            results[f"{name}/sliding+headers"] = statistics.median(samples)
        results["redis_ping_us"] = statistics.median(
            asyncio.run(_ping_cost(redis_url, checks // 5)) for _ in range(rounds)
        )
    return results


def cpu_seconds(pid: int) -> float:
    """User and system time the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(quick: bool) -> dict[str, object]:
    seconds, rounds = (3, 3) if quick else (3, 15)
    base = common.workdir("ratelimit")
    with common.backend() as backend_port, Redis(base / "redis") as redis_url:
        variants = {
            "none": gateway(base / "none", policy_text(backend_port, False), "memory://"),
            "three-memory": gateway(base / "memory", policy_text(backend_port, True), "memory://"),
            "three-redis": gateway(base / "redis", policy_text(backend_port, True), redis_url),
        }
        rps: dict[str, list[float]] = {name: [] for name in variants}
        cpu_us: dict[str, list[float]] = {name: [] for name in variants}
        with contextlib.ExitStack() as stack:
            pids = {
                name: stack.enter_context(common.running(args, port, base / f"{name}.log")).pid
                for name, (args, port) in variants.items()
            }
            for _args, port in variants.values():
                common.wrk(port, HOST, PATH, seconds=1)  # warm-up
            names = list(variants)
            for index in range(rounds):  # the order reversed every other round: drift cancels
                for name in names if index % 2 == 0 else names[::-1]:
                    _args, port = variants[name]
                    before = cpu_seconds(pids[name])
                    load = common.wrk(port, HOST, PATH, seconds=seconds)
                    if load.non_2xx or load.socket_errors:
                        raise RuntimeError(f"{name} failed requests during the benchmark: {load}")
                    rps[name].append(load.requests_per_second)
                    cpu_us[name].append((cpu_seconds(pids[name]) - before) / load.requests * 1e6)

    def ratio(candidate: str) -> float:
        return statistics.median(c / b for c, b in zip(rps[candidate], rps["none"], strict=True))

    def cpu_ratio(candidate: str) -> float:
        # Requests per CPU-second, relative: what the throughput ratio is on a quiet machine.
        pairs = zip(cpu_us["none"], cpu_us[candidate], strict=True)
        return statistics.median(b / c for b, c in pairs)

    return {
        "rps": rps,
        "cpu_us_per_request": cpu_us,
        "median_rps": {name: statistics.median(values) for name, values in rps.items()},
        "median_cpu_us": {name: statistics.median(values) for name, values in cpu_us.items()},
        "ratio_memory_vs_none": ratio("three-memory"),
        "ratio_redis_vs_none": ratio("three-redis"),
        "cpu_ratio_memory_vs_none": cpu_ratio("three-memory"),
        "cpu_ratio_redis_vs_none": cpu_ratio("three-redis"),
    }


def run(quick: bool) -> str:
    results = {"check_cost_us": check_cost(quick), "throughput": throughput(quick)}
    common.save("ratelimit", results)
    return report(results)


def report(results: dict[str, dict[str, Any]]) -> str:
    cost: dict[str, float] = results["check_cost_us"]
    t = results["throughput"]
    rps: dict[str, float] = t["median_rps"]
    ping = cost["redis_ping_us"]
    rows: list[list[object]] = []
    for storage in ("memory", "redis"):
        for variant in (*STRATEGIES, "sliding+headers"):
            us = cost[f"{storage}/{variant}"]
            detail = f"{us / ping:.2f}x a PING ({ping:.0f} us)" if storage == "redis" else ""
            rows.append([f"1. one check, {storage}, {variant}", f"{us:.1f} us", "", detail])
    cpu: dict[str, float] = t["median_cpu_us"]
    for storage, target in (("memory", ">= 0.95"), ("redis", "(information)")):
        rows.append(
            [
                f"2. three limits vs none, {storage}: req/s",
                f"{t[f'ratio_{storage}_vs_none']:.3f}",
                target,
                f"{rps[f'three-{storage}']:.0f} vs {rps['none']:.0f} req/s",
            ]
        )
        rows.append(
            [
                f"2. three limits vs none, {storage}: req per CPU-s",
                f"{t[f'cpu_ratio_{storage}_vs_none']:.3f}",
                target,
                f"{cpu[f'three-{storage}']:.0f} vs {cpu['none']:.0f} us of CPU per request",
            ]
        )
    return common.table(rows, ["benchmark", "result", "target", "detail"])
