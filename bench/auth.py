"""Sign-in on the gateway: what checking a session on every request costs.

1. requests/s to a resource behind sign-in, with a valid session cookie (verified signature
   cached, revocation asked of the shared state on every request, identity headers and the
   signed assertion added) vs a public resource on the same gateway (target >= 0.95)
2. the same with the shared state in Redis instead of the node's SQLite file (when
   redis-server is installed)
3. the per-request cost in-process: a cached session lookup, and a revocation check
"""

import asyncio
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import common
from core.auth import sessions
from core.auth.keys import KeyRing
from core.auth.kv import SqliteKV
from core.auth.tokens import mint, new_id
from core.auth.verifier import Verifier
from demo import processes

PORTAL = "http://auth.bench.example"
PUBLIC = "public.bench.example"
PRIVATE = "private.bench.example"


def _policy(backend_port: int) -> str:
    target = f"[{{host: 127.0.0.1, port: {backend_port}}}]"
    return f"""\
version: 1
resources:
  public:
    host: {PUBLIC}
    auth: public
    targets: {target}
  private:
    host: {PRIVATE}
    auth: {{groups: [ops]}}
    targets: {target}
"""


def _gateway(directory: Path, backend_port: int, storage: str) -> tuple[list[str], int, str]:
    directory.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    (directory / "policy.yaml").write_text(_policy(backend_port))
    config = directory / "warren.yaml"
    config.write_text(
        f"public_url: {PORTAL}\nlisten: 127.0.0.1:{port}\npolicy_file: policy.yaml\n"
        f"state_dir: state\nstorage: {storage}\nreload_poll: 1h\n"
    )
    keys = KeyRing(directory / "state" / "keys")
    keys.ensure()
    session = mint(
        keys,
        use="session",
        issuer=PORTAL,
        audience=PRIVATE,
        subject="alice",
        lifetime=3600,
        claims={"sid": new_id(), "groups": ["ops"], "email": "alice@example.com"},
    )
    return processes.warren("gateway", "--config", str(config)), port, session


@contextmanager
def _redis() -> Iterator[str | None]:
    if shutil.which("redis-server") is None:
        yield None
        return
    port = processes.free_port()
    process = processes.start(
        common.pinned(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            common.LOAD_CORE,
        )
    )
    try:
        processes.wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        processes.stop(process)


def _compare(name: str, storage: str, backend_port: int, quick: bool) -> dict[str, object]:
    seconds, rounds = (3, 3) if quick else (5, 7)
    base = common.workdir(f"auth-{name}")
    args, port, session = _gateway(base, backend_port, storage)
    cookie = f"Cookie: theme=dark; warren_session={session}"
    with common.running(args, port, base / "gateway.log"):

        def public() -> float:
            return _measure(port, PUBLIC, ())

        def signed_in() -> float:
            return _measure(port, PRIVATE, (cookie,))

        def _measure(port: int, host: str, headers: tuple[str, ...]) -> float:
            load = common.wrk(port, host, "/bench", seconds=seconds, headers=headers)
            if load.non_2xx or load.socket_errors:
                raise RuntimeError(f"{host} failed requests during the benchmark: {load}")
            return load.requests_per_second

        common.wrk(port, PUBLIC, "/bench", seconds=1)  # warm-up; fills the session cache too
        common.wrk(port, PRIVATE, "/bench", seconds=1, headers=(cookie,))
        comparison = common.interleave(name, ("public", public), ("signed-in", signed_in), rounds)
    return {
        "storage": storage.split("://")[0],
        "public_rps": comparison.baseline_rps,
        "signed_in_rps": comparison.candidate_rps,
        "ratio": comparison.ratio,
        "ratios": comparison.ratios,
    }


def _per_request(quick: bool) -> dict[str, float]:
    directory = common.workdir("auth-unit")
    keys = KeyRing(directory / "keys")
    keys.ensure()
    verifier = Verifier(keys, PORTAL)
    sid = new_id()
    token = mint(
        keys, use="session", issuer=PORTAL, audience=PRIVATE, subject="alice", lifetime=3600,
        claims={"sid": sid, "groups": ["ops"]},
    )  # fmt: skip
    kv = SqliteKV(directory / "signin.sqlite3")
    asyncio.run(sessions.revoke_session(kv, "someone-else", time.time() + 3600))
    count = 2_000 if quick else 20_000
    started = time.perf_counter()
    for _ in range(50):
        verifier = Verifier(keys, PORTAL)
        verifier.check(token, "session", PRIVATE)
    cold_us = (time.perf_counter() - started) / 50 * 1e6
    started = time.perf_counter()
    for _ in range(count):
        verifier.check(token, "session", PRIVATE)
    warm_us = (time.perf_counter() - started) / count * 1e6
    keys_to_check = sessions.revocation_keys(sid, "alice")
    started = time.perf_counter()
    for _ in range(count):
        sessions.is_revoked(kv.get_many_now(keys_to_check), sid, "alice", 0)
    revocation_us = (time.perf_counter() - started) / count * 1e6
    return {
        "verify_cold_us": cold_us,
        "verify_cached_us": warm_us,
        "revocation_sqlite_us": revocation_us,
    }


def run(quick: bool) -> str:
    results: dict[str, object] = {}
    with common.backend() as backend_port:
        results["sqlite"] = _compare("sqlite", "memory://", backend_port, quick)
        with _redis() as redis_url:
            if redis_url is not None:
                results["redis"] = _compare("redis", redis_url, backend_port, quick)
    results["per_request"] = _per_request(quick)
    common.save("auth", results)
    return report(results)


def report(results: dict[str, object]) -> str:
    rows = []
    for key, label in (("sqlite", "memory:// (SQLite state)"), ("redis", "redis://")):
        entry = results.get(key)
        if not isinstance(entry, dict):
            continue
        public = statistics.median(entry["public_rps"])
        signed = statistics.median(entry["signed_in_rps"])
        rows.append([
            f"{'1' if key == 'sqlite' else '2'}. signed-in vs public, {label}",
            f"{entry['ratio']:.3f}",
            ">= 0.95",
            f"{signed:.0f} vs {public:.0f} req/s (medians)",
        ])  # fmt: skip
    unit = results["per_request"]
    assert isinstance(unit, dict)
    rows.append([
        "3. session check, cached / first time",
        f"{unit['verify_cached_us']:.2f} us",
        "",
        f"signature verified once: {unit['verify_cold_us']:.0f} us",
    ])  # fmt: skip
    rows.append(["3. revocation check (SQLite)", f"{unit['revocation_sqlite_us']:.2f} us", "", ""])
    return common.table(rows, ["benchmark", "result", "target", "detail"])
