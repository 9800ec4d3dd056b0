"""TLS: handshakes per second and requests per second over TLS, `warren gateway` vs bare mitmdump.

Both serve the same certificate (an ECDSA P-256 leaf for app.example and 127.0.0.1) in front of
the same backend; the gateway with an empty public policy, so what differs is Warren's path,
its certificate serving (addons.certificates) included.

1. new TLS connections per second: wrk with `Connection: close`, so every request is a full
   handshake (wrk resumes no sessions)
2. requests per second over TLS on keep-alive connections
"""

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import common
from bench.gateway import HOST, PATH, bare_mitmdump, policy_text, warren_gateway


def _certificate(directory: Path) -> Path:
    from tests.support.tls import LocalCa

    path = directory / "cert.pem"
    LocalCa.fresh().issue([HOST, "127.0.0.1"], path)
    return path


def measure(quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 4) if quick else (5, 8)
    base = common.workdir("tls")
    cert = _certificate(Path(tempfile.mkdtemp(prefix="warren-bench-tls-")))
    with common.backend() as backend_port:
        mitm_args, mitm_port = bare_mitmdump(base / "mitmdump", backend_port)
        variants = {
            "mitmdump": ([*mitm_args, "--set", f"certs=*={cert}"], mitm_port),
            "warren": warren_gateway(
                base / "warren", policy_text(0, backend_port), f"certs: [{cert}]\n"
            ),
        }
        figures: dict[str, dict[str, list[float]]] = {
            kind: {name: [] for name in variants} for kind in ("handshakes", "keepalive")
        }
        started = []
        try:
            for name, (args, port) in variants.items():
                context = common.running(args, port, base / f"{name}.log")
                context.__enter__()
                started.append(context)
            order = list(variants.items())
            for name, (_args, port) in order:  # warm-up
                _load(name, port, 1, close=False)
            for index in range(rounds):
                for name, (_args, port) in order if index % 2 == 0 else order[::-1]:
                    figures["handshakes"][name].append(_load(name, port, seconds, close=True))
                    figures["keepalive"][name].append(_load(name, port, seconds, close=False))
        finally:
            for context in started:
                context.__exit__(None, None, None)
    return {
        "figures": figures,
        "median": {k: {n: statistics.median(v) for n, v in f.items()} for k, f in figures.items()},
        "ratio": {
            kind: statistics.median(w / m for w, m in zip(f["warren"], f["mitmdump"], strict=True))
            for kind, f in figures.items()
        },
    }


def _load(name: str, port: int, seconds: float, *, close: bool) -> float:
    headers = ["Connection: close"] if close else []
    connections = 8 if close else 16
    load = common.wrk(
        port, HOST, PATH, seconds=seconds, connections=connections, headers=headers, scheme="https"
    )
    if load.non_2xx or (load.socket_errors and not close):
        raise RuntimeError(f"{name} failed requests during the benchmark: {load}")
    return load.requests_per_second


def run(quick: bool) -> str:
    results = measure(quick)
    common.save("tls", results)
    median, ratio = results["median"], results["ratio"]
    rows = [
        ["1. TLS handshakes/s, warren gateway vs bare mitmdump", f"{ratio['handshakes']:.2f}x",
         "report", f"{median['handshakes']['warren']:.0f} vs "
         f"{median['handshakes']['mitmdump']:.0f} new connections/s"],
        ["2. requests/s over TLS (keep-alive), same", f"{ratio['keepalive']:.2f}x", "report",
         f"{median['keepalive']['warren']:.0f} vs {median['keepalive']['mitmdump']:.0f} req/s"],
    ]  # fmt: skip
    return common.table(rows, ["benchmark", "result", "target", "detail"])
