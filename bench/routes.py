"""Path routes: what choosing a route and rewriting the path cost on every request.

requests/s to a resource whose request takes a route with a rewrite (`/api/*`, `strip_prefix:
/api`, among eight routes of every kind) vs a plain resource without routes, the same gateway,
the same backend, interleaved rounds (target >= 0.97); also as the gateway's CPU time per
request, which other load on a shared machine disturbs far less.
"""

import statistics
from typing import Any

from bench import common
from bench.gateway import QUIET, warren_gateway

PLAIN, ROUTED = "plain.bench.example", "routed.bench.example"


def _policy(backend_port: int) -> str:
    target = f"[{{host: 127.0.0.1, port: {backend_port}}}]"
    # The request's route is fifth in the order the table tries them (core.policy.routes): two
    # exact routes and three longer prefixes come first and do not match.
    routes = [
        '"/login"',
        '"/logout"',
        '"/api/v2/*"',
        '"/static/*"',
        '"/files/*.tmp"',
        '"/api/*", rewrite: {strip_prefix: /api}',
        '"/ws/**"',
        '"/*.php"',
    ]
    return "\n".join([
        "version: 1",
        "resources:",
        "  plain:",
        f"    host: {PLAIN}",
        "    auth: public",
        f"    targets: {target}",
        "  routed:",
        f"    host: {ROUTED}",
        "    auth: public",
        f"    targets: {target}",
        "    routes:",
        *(f"      - {{path: {route}, targets: {target}}}" for route in routes),
    ]) + "\n"  # fmt: skip


def run(quick: bool) -> str:
    seconds, rounds = (2, 4) if quick else (4, 10)
    base = common.workdir("routes")
    with common.backend() as backend_port:
        args, port = warren_gateway(base / "gateway", _policy(backend_port), QUIET)
        cpu: list[tuple[str, float]] = []  # (label, us per request), in the order measured
        with common.running(args, port, base / "gateway.log") as gateway:

            def measure(label: str, host: str, path: str) -> float:
                before = common.cpu_seconds(gateway.pid)
                load = common.wrk(port, host, path, seconds=seconds)
                used = common.cpu_seconds(gateway.pid) - before
                if load.non_2xx or load.socket_errors:
                    raise RuntimeError(f"{label} failed requests during the benchmark: {load}")
                cpu.append((label, used / max(1, load.requests) * 1e6))
                return load.requests_per_second

            common.wrk(port, PLAIN, "/bench", seconds=1)  # warm-up
            common.wrk(port, ROUTED, "/api/bench", seconds=1)
            comparison = common.interleave(
                "routes",
                ("plain", lambda: measure("plain", PLAIN, "/bench")),
                ("routed", lambda: measure("routed", ROUTED, "/api/bench")),
                rounds,
            )
    plain_cpu, routed_cpu = common.bracketed(cpu, "routed")
    results = {
        "plain_rps": comparison.baseline_rps,
        "routed_rps": comparison.candidate_rps,
        "ratio": comparison.ratio,
        "ratios": comparison.ratios,
        "cpu_us_per_request": {"plain": plain_cpu, "routed": routed_cpu},
        "cpu_ratio": statistics.median(
            plain / routed for plain, routed in zip(plain_cpu, routed_cpu, strict=True)
        ),
    }
    common.save("routes", results)
    return report(results)


def report(results: dict[str, Any]) -> str:
    plain, routed, cpu = results["plain_rps"], results["routed_rps"], results["cpu_us_per_request"]
    rows = [
        [
            "a route with a rewrite vs a plain resource",
            f"{results['ratio']:.3f}",
            ">= 0.97",
            f"{statistics.median(routed):.0f} vs {statistics.median(plain):.0f} req/s (medians)",
        ],
        [
            "the same in gateway CPU per request",
            f"{results['cpu_ratio']:.3f}",
            ">= 0.97",
            f"{statistics.median(cpu['routed']):.0f} vs {statistics.median(cpu['plain']):.0f} us "
            "(medians)",
        ],
    ]
    return common.table(rows, ["benchmark", "result", "target", "detail"])
