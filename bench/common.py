"""What every benchmark needs: processes pinned to cores, wrk as the load, interleaved rounds.

The machine is shared and noisy, so absolute numbers drift. Every figure that matters is a ratio
against a baseline measured in the same invocation, round by round (A, B, A, B, ...), and the
median of the per-round ratios is reported.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

from demo import processes

RESULTS = Path(__file__).resolve().parent / "results"
CORES = os.cpu_count() or 1


def pinned(args: Sequence[str], core: int) -> list[str]:
    """Keep the measured process and the load generator off each other's core."""
    if CORES < 2 or shutil.which("taskset") is None:
        return list(args)
    return ["taskset", "-c", str(core % CORES), *args]


GATEWAY_CORE = 0
LOAD_CORE = 1  # wrk and the backend share the other core


@contextmanager
def backend() -> Iterator[int]:
    port = processes.free_port()
    process = processes.start(pinned([sys.executable, "-m", "bench.backend", str(port)], LOAD_CORE))
    try:
        processes.wait_for_port(port, process)
        yield port
    finally:
        processes.stop(process)


@contextmanager
def running(args: Sequence[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = processes.start(pinned(args, GATEWAY_CORE), log=log)
    try:
        processes.wait_for_port(port, process, timeout=120)
        yield process
    finally:
        processes.stop(process)


@dataclass
class Load:
    requests_per_second: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_p50_ms: float
    latency_p99_ms: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    port: int,
    host: str,
    path: str = "/",
    seconds: float = 5,
    connections: int = 16,
    script: Path | None = None,
    address: str = "127.0.0.1",
    within: Sequence[str] = (),  # a command prefix, e.g. `ip netns exec NAME`
    headers: Sequence[str] = (),
    scheme: str = "http",
) -> Load:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {host}"]
    for header in headers:
        args += ["-H", header]
    if script is not None:
        args += ["-s", str(script)]
    output = subprocess.run(
        [*within, *pinned([*args, f"{scheme}://{address}:{port}{path}"], LOAD_CORE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _parse_wrk(output)


def _parse_wrk(output: str) -> Load:
    def number(pattern: str, default: float = 0.0) -> float:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else default

    def latency(percent: str) -> float:
        found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Load(
        requests_per_second=number(r"Requests/sec:\s+([\d.]+)"),
        requests=int(number(r"(\d+) requests in")),
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        latency_p50_ms=latency("50"),
        latency_p99_ms=latency("99"),
    )


@dataclass
class Comparison:
    name: str
    baseline: str
    candidate: str
    baseline_rps: list[float] = field(default_factory=list)
    candidate_rps: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [c / b for b, c in zip(self.baseline_rps, self.candidate_rps, strict=True) if b]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def interleave(
    name: str,
    baseline: tuple[str, Callable[[], float]],
    candidate: tuple[str, Callable[[], float]],
    rounds: int,
) -> Comparison:
    """Rounds of the candidate between two runs of the baseline (common.interleave_all)."""
    (comparison,) = interleave_all(name, baseline, [candidate], rounds)
    comparison.name = name
    return comparison


def interleave_all(
    name: str,
    baseline: tuple[str, Callable[[], float]],
    candidates: Sequence[tuple[str, Callable[[], float]]],
    rounds: int,
) -> list[Comparison]:
    """Every run of a candidate stands between two runs of the baseline (B c1 B c2 B c3 B c1 B
    ...) and is compared with their mean: a drift in the machine's speed that is steady over
    the three runs cancels out, and every candidate is as near its baseline as every other.
    (With each round running the baseline once and every candidate after it, a candidate in
    the middle was never measured next to the baseline, and its ratio came out several per cent
    lower than the same candidate's measured next to it.) The candidates' order turns by one
    from round to round, so none is always measured first or last in a round."""
    comparisons = [Comparison(f"{name}-{label}", baseline[0], label) for label, _ in candidates]
    before = baseline[1]()
    for index in range(rounds):
        shift = index % len(candidates)
        for position in [*range(shift, len(candidates)), *range(shift)]:
            measured = candidates[position][1]()
            after = baseline[1]()
            comparisons[position].baseline_rps.append((before + after) / 2)
            comparisons[position].candidate_rps.append(measured)
            before = after
    return comparisons


def bracketed(runs: Sequence[tuple[str, float]], label: str) -> tuple[list[float], list[float]]:
    """A figure taken at every run (CPU per request, say), as (label, figure) in the order
    interleave_all ran them: for each run of `label`, the mean of the baseline's runs either
    side of it, and its own."""
    around, own = [], []
    for index, (measured, figure) in enumerate(runs):
        if measured == label:
            around.append((runs[index - 1][1] + runs[index + 1][1]) / 2)
            own.append(figure)
    return around, own


def public_resource_policy(
    host: str, backend_port: int, rules: Sequence[str], top: Sequence[str] = ()
) -> str:
    """policy.yaml with one public resource `app` in front of the backend; `rules` are its rule
    lines (flow mappings), `top` extra top-level lines."""
    lines = [
        "version: 1",
        *top,
        "resources:",
        "  app:",
        f"    host: {host}",
        "    auth: public",
        f"    targets: [{{host: 127.0.0.1, port: {backend_port}}}]",
        "    rules:",
        *(f"      - {rule}" for rule in rules),
    ]
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    """User and system time the process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"warren-bench-{prefix}-"))


def save(name: str, result: Mapping[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=_plain))
    return path


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
