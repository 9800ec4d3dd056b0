"""Tunnels: the site agent's forwarder, HTTP through a tunnel, the agent's memory.

Run in network namespaces (tests.support.tunnellab: user, node, NAT router, site), as root:
1. bulk TCP throughput (iperf3, node to site) through the agent's forwarder vs the raw WireGuard
   tunnel between the same namespaces (target >= 0.8)
2. HTTP req/s (wrk from the user) through gateway + tunnel vs the gateway straight to the same
   kind of backend on the node (target >= 0.9)
3. resident memory of the site agent holding 1 000 concurrent TCP connections through its
   forwarder
4. bulk TCP throughput over the TCP/443 fallback (UDP dropped on the site's router) vs the UDP
   tunnel between the same namespaces (target >= 0.5). Not interleaved: moving between the two
   takes the agent a fallback or a UDP try; UDP's rounds are run just before.
"""

import json
import os
import resource
import shutil
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common
from demo import processes
from tests.support.netlab import Lab
from tests.support.tunnellab import GATEWAY_PORT, NODE_FOR_USER, TunnelLab, secret_and_hash

SITE_ADDRESS = "100.89.0.2"
BACKEND = 8000  # on the site's loopback, reached through the tunnel
NODE_BACKEND = 8001  # on the node's loopback, reached straight
IPERF_FORWARDED = 5201  # on the site's loopback: through the agent's forwarder
IPERF_RAW = 5202  # on the site's tunnel address itself: the raw tunnel
ECHO = 7000
CONNECTIONS = 1000
HTTP_CONNECTIONS = 64


def policy(secret_hash: str) -> str:
    def tcp(name: str, port: int, target: int) -> str:
        return (
            f"  {name}:\n    protocol: tcp\n    port: {port}\n    auth: public\n"
            f"    targets: [{{site: home, host: 127.0.0.1, port: {target}}}]\n"
        )

    return (
        "version: 1\n"
        f'sites:\n  home: {{secret_sha256: "{secret_hash}"}}\n'
        "resources:\n"
        "  tunnelled:\n    host: tunnel.example\n    auth: public\n"
        f"    targets: [{{site: home, host: 127.0.0.1, port: {BACKEND}}}]\n"
        "  direct:\n    host: direct.example\n    auth: public\n"
        f"    targets: [{{host: 127.0.0.1, port: {NODE_BACKEND}}}]\n"
        # Raw resources only so that the site carries these ports; the benchmark talks to the
        # site's tunnel address from the node directly.
        + tcp("bulk", 15201, IPERF_FORWARDED)
        + tcp("many", 17000, ECHO)
    )


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft", "wireguard-go", "iperf3", "wrk"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def run(quick: bool) -> str:
    reason = missing()
    if reason is not None:
        return f"skipped: the tunnel benchmarks {reason}"
    lab = Lab()
    try:
        tunnel = TunnelLab.build(lab, common.workdir("tunnel"))
        results = measure(tunnel, quick)
    finally:
        lab.close()
    common.save("tunnel", results)
    return report(results)


def measure(tunnel: TunnelLab, quick: bool) -> dict[str, Any]:
    secret, secret_hash = secret_and_hash()
    tunnel.write_node(policy(secret_hash))
    bench_backend = processes.python("-m", "bench.backend")
    tunnel.start_in_site([*bench_backend, str(BACKEND)], "backend", BACKEND)
    tunnel.start_in_site(
        processes.python("-m", "tests.support.echo", "--tcp", str(ECHO)), "echo", ECHO
    )
    tunnel.start_in_site(
        ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(IPERF_FORWARDED)],
        "iperf-fwd",
        IPERF_FORWARDED,
    )
    node_backend = tunnel.node.start(
        [*bench_backend, str(NODE_BACKEND)], log=tunnel.directory / "node-backend.log"
    )
    tunnel.wait_for(tunnel.node, NODE_BACKEND, node_backend)
    tunnel.start_node()
    tunnel.start_agent("home", secret)
    wait_online(tunnel)
    raw = tunnel.site.start(
        ["iperf3", "-s", "-B", SITE_ADDRESS, "-p", str(IPERF_RAW)],
        log=tunnel.directory / "iperf-raw.log",
    )
    with tunnel.node.entered():
        processes.wait_for_port(IPERF_RAW, raw, host=SITE_ADDRESS, timeout=30)
    results = {
        "throughput": throughput(tunnel, quick),
        "http": http(tunnel, quick),
        "memory": memory(tunnel),
    }
    results["fallback"] = fallback(tunnel, quick)
    return results


def wait_online(tunnel: TunnelLab, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tunnel.site_online("home"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the site did not come online:{tunnel.logs()}")


def iperf(tunnel: TunnelLab, port: int, seconds: int) -> float:
    done = tunnel.node.run(
        ["iperf3", "-c", SITE_ADDRESS, "-p", str(port), "-t", str(seconds), "-J"],
        check=True,
        timeout=seconds + 60,
    )
    bits: float = json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]
    return bits / 1e6


def throughput(tunnel: TunnelLab, quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 3) if quick else (5, 5)
    iperf(tunnel, IPERF_RAW, 1)  # warm-up: handshakes, caches
    comparison = common.interleave(
        "bulk",
        ("raw tunnel", lambda: iperf(tunnel, IPERF_RAW, seconds)),
        ("agent forwarder", lambda: iperf(tunnel, IPERF_FORWARDED, seconds)),
        rounds,
    )
    return {
        "raw_mbit_s": comparison.baseline_rps,
        "forwarded_mbit_s": comparison.candidate_rps,
        "median_raw_mbit_s": statistics.median(comparison.baseline_rps),
        "median_forwarded_mbit_s": statistics.median(comparison.candidate_rps),
        "ratio": comparison.ratio,
    }


def http(tunnel: TunnelLab, quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 3) if quick else (5, 5)
    within = tunnel.user.command([])

    def load(host: str) -> float:
        # Enough connections that the gateway, not the round trip through the tunnel, is what
        # limits the rate: on a shared two-core machine, every process the tunnel adds on the
        # way (two wireguard-go, the agent) waits for a time slice at each packet, which a few
        # connections cannot hide. Both paths get the same load.
        result = common.wrk(
            GATEWAY_PORT,
            host,
            "/bench",
            seconds,
            connections=HTTP_CONNECTIONS,
            address=NODE_FOR_USER,
            within=within,
        )
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(f"{host}: failed requests during the benchmark: {result}")
        return result.requests_per_second

    load("direct.example")
    load("tunnel.example")
    comparison = common.interleave(
        "http",
        ("gateway straight", lambda: load("direct.example")),
        ("gateway + tunnel", lambda: load("tunnel.example")),
        rounds,
    )
    return {
        "connections": HTTP_CONNECTIONS,
        "direct_rps": comparison.baseline_rps,
        "tunnel_rps": comparison.candidate_rps,
        "median_direct_rps": statistics.median(comparison.baseline_rps),
        "median_tunnel_rps": statistics.median(comparison.candidate_rps),
        "ratio": comparison.ratio,
    }


def transport(tunnel: TunnelLab) -> str:
    return str(tunnel.site_state("home").get("transport"))


def fallback(tunnel: TunnelLab, quick: bool) -> dict[str, Any]:
    """The raw tunnel's bulk throughput on UDP, then with UDP dropped (the agent on TCP/443)."""
    seconds, rounds = (3, 3) if quick else (5, 5)
    udp = [iperf(tunnel, IPERF_RAW, seconds) for _ in range(rounds)]
    tunnel.block_udp()
    deadline = time.monotonic() + 120
    while transport(tunnel) != "tcp" or not tunnel.site_online("home"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the site did not fall back to TCP/443:{tunnel.logs()}")
        time.sleep(0.5)
    iperf(tunnel, IPERF_RAW, 1)  # warm-up: the stream's TCP window
    tcp = [iperf(tunnel, IPERF_RAW, seconds) for _ in range(rounds)]
    tunnel.allow_udp()
    return {
        "udp_mbit_s": udp,
        "tcp443_mbit_s": tcp,
        "median_udp_mbit_s": statistics.median(udp),
        "median_tcp443_mbit_s": statistics.median(tcp),
        "ratio": statistics.median(tcp) / statistics.median(udp),
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def memory(tunnel: TunnelLab) -> dict[str, Any]:
    agent = tunnel.agents["home"].pid
    idle = rss_kib(agent)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: list[socket.socket] = []
    try:
        with tunnel.node.entered():
            for index in range(CONNECTIONS):
                connection = socket.create_connection((SITE_ADDRESS, ECHO), timeout=10)
                held.append(connection)
                connection.sendall(b"x")
                if connection.recv(16) != b"echo:x":  # relayed end to end, so fully open
                    raise RuntimeError(f"connection {index} did not echo")
        loaded = rss_kib(agent)
    finally:
        for connection in held:
            connection.close()
    return {
        "connections": CONNECTIONS,
        "agent_rss_idle_kib": idle,
        "agent_rss_kib": loaded,
        "per_connection_kib": (loaded - idle) / CONNECTIONS,
    }


def report(results: dict[str, dict[str, Any]]) -> str:
    t, h, m = results["throughput"], results["http"], results["memory"]
    f = results["fallback"]
    rows = [
        [
            "1. bulk TCP: agent forwarder vs raw tunnel",
            f"{t['ratio']:.2f}",
            ">= 0.8",
            f"{t['median_forwarded_mbit_s']:.0f} vs {t['median_raw_mbit_s']:.0f} Mbit/s",
        ],
        [
            "2. HTTP: gateway + tunnel vs gateway straight",
            f"{h['ratio']:.2f}",
            ">= 0.9",
            f"{h['median_tunnel_rps']:.0f} vs {h['median_direct_rps']:.0f} req/s",
        ],
        [
            f"3. site agent RSS, {m['connections']} TCP connections",
            f"{m['agent_rss_kib'] / 1024:.1f} MiB",
            "",
            f"idle {m['agent_rss_idle_kib'] / 1024:.1f} MiB, "
            f"{m['per_connection_kib']:.1f} KiB per connection",
        ],
        [
            "4. bulk TCP: TCP/443 fallback vs UDP tunnel",
            f"{f['ratio']:.2f}",
            ">= 0.5",
            f"{f['median_tcp443_mbit_s']:.0f} vs {f['median_udp_mbit_s']:.0f} Mbit/s",
        ],
    ]
    return common.table(rows, ["benchmark", "result", "target", "detail"])
