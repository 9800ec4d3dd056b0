"""Sign-in on the gateway: what checking a session or an app's token on every request costs.

1. requests/s to a resource behind sign-in vs a public resource on the same gateway (target
   >= 0.95 each), three ways in: a session cookie of an account (verified signature cached,
   revocation asked of the shared state on every request, identity headers and the signed
   assertion added), a session an identity provider made (a person without an account: the
   token's `idp`, `amr: ["oidc"]`), and an app's bearer token (`Authorization: Bearer`, its
   record read from the in-memory copy of the shared state); also as the gateway's CPU time per
   request, which other load on a shared machine disturbs far less
2. the same with the shared state in Redis instead of the node's SQLite file (when
   redis-server is installed)
3. the per-request cost in-process: a cached session lookup, a revocation check (SQLite's
   in-memory copy, with the change counter read), and the user's current entry in users.yaml
   (the groups the gateway decides on)
4. the gateway's instructions per request under callgrind (when valgrind is installed), one
   request after another on one connection: other load on the machine does not change them,
   so they show a way in's cost when the requests/s of a shared machine vary by more than it
"""

import asyncio
import functools
import http.client
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from bench import common
from core.auth import apptokens, sessions
from core.auth.services import USERS_RECHECK_SECONDS
from core.auth.signing import KeyRing
from core.auth.signinstate import SqliteKV, open_kv
from core.auth.tokens import mint, new_id
from core.auth.users import User, UsersFile, UsersSource, current_identity, hash_secret, save_users
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


class Credentials(NamedTuple):
    session: str  # an account's session token
    oidc: str  # a session token of an identity provider's user linked to no account
    bearer: str  # an app's token (core.auth.apptokens)


def _gateway(
    directory: Path, backend_port: int, storage: str
) -> tuple[list[str], int, Credentials]:
    directory.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    (directory / "policy.yaml").write_text(_policy(backend_port))
    config = directory / "warren.yaml"
    config.write_text(
        f"public_url: {PORTAL}\nlisten: 127.0.0.1:{port}\npolicy_file: policy.yaml\n"
        f"state_dir: state\nstorage: {storage}\nreload_poll: 1h\n"
    )
    # The gateway decides on the user's entry in users.yaml as it is now, not the token's groups.
    user = User(password=hash_secret("bench password"), email="alice@example.com", groups=("ops",))
    save_users(directory / "users.yaml", UsersFile(users={"alice": user}))
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
    oidc = mint(
        keys,
        use="session",
        issuer=PORTAL,
        audience=PRIVATE,
        subject="oidc:corp:248289761001",
        lifetime=3600,
        claims={
            "sid": new_id(),
            "groups": ["ops"],
            "email": "jane@example.com",
            "idp": "oidc:corp",
            "amr": ["oidc"],
        },
    )
    kv = open_kv(storage, directory / "state")

    async def token() -> str:
        text, _record = await apptokens.create(kv, "alice", "private", timedelta(hours=1))
        await kv.close()
        return text

    bearer = asyncio.run(token())
    credentials = Credentials(session, oidc, bearer)
    return processes.warren("gateway", "--config", str(config)), port, credentials


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


WAYS = ("session", "oidc", "bearer")  # the candidates, each against the public resource


def _compare(name: str, storage: str, backend_port: int, quick: bool) -> dict[str, object]:
    # Many short rounds: the shared machine's speed drifts by several per cent within seconds,
    # and the median of many rounds is what stays put between runs. Every run of a way in
    # stands between two runs of the public resource (common.interleave_all).
    seconds, rounds = (2, 3) if quick else (2, 21)
    base = common.workdir(f"auth-{name}")
    args, port, credentials = _gateway(base, backend_port, storage)
    headers = {
        "session": (f"Cookie: theme=dark; warren_session={credentials.session}",),
        "oidc": (f"Cookie: theme=dark; warren_session={credentials.oidc}",),
        "bearer": (f"Authorization: Bearer {credentials.bearer}",),
    }
    cpu: list[tuple[str, float]] = []  # (label, us per request), in the order measured
    entry: dict[str, object] = {"storage": storage.split("://")[0]}
    with common.running(args, port, base / "gateway.log") as gateway:

        def measure(label: str, host: str, sent: tuple[str, ...]) -> float:
            before = common.cpu_seconds(gateway.pid)
            load = common.wrk(port, host, "/bench", seconds=seconds, headers=sent)
            used = common.cpu_seconds(gateway.pid) - before
            if load.non_2xx or load.socket_errors:
                raise RuntimeError(f"{label} failed requests during the benchmark: {load}")
            cpu.append((label, used / max(1, load.requests) * 1e6))
            return load.requests_per_second

        common.wrk(port, PUBLIC, "/bench", seconds=1)  # warm-up; fills the session cache too
        for way in WAYS:
            common.wrk(port, PRIVATE, "/bench", seconds=1, headers=headers[way])
        comparisons = common.interleave_all(
            name,
            ("public", lambda: measure("public", PUBLIC, ())),
            [(way, functools.partial(measure, way, PRIVATE, headers[way])) for way in WAYS],
            rounds,
        )
        for way, comparison in zip(WAYS, comparisons, strict=True):
            public_cpu, way_cpu = common.bracketed(cpu, way)
            entry[way] = {
                "public_rps": comparison.baseline_rps,
                "rps": comparison.candidate_rps,
                "ratio": comparison.ratio,
                "ratios": comparison.ratios,
                # The machine is shared: CPU time per request varies far less with other load
                # than requests/s do. public/way is the throughput ratio of a CPU-bound gateway.
                "cpu_us_per_request": {"public": public_cpu, way: way_cpu},
                "cpu_ratio": statistics.median(
                    public / used for public, used in zip(public_cpu, way_cpu, strict=True)
                ),
            }
    return entry


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

    async def revocations() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await sessions.revoked(kv, sid, "alice", 0)
        return (time.perf_counter() - started) / count * 1e6

    revocation_us = asyncio.run(revocations())
    user = User(password=hash_secret("bench password"), groups=("ops",))
    save_users(directory / "users.yaml", UsersFile(users={"alice": user}))
    users = UsersSource(directory / "users.yaml", USERS_RECHECK_SECONDS)  # as the gateway has it
    identity = verifier.check(token, "session", PRIVATE).identity
    started = time.perf_counter()
    for _ in range(count):
        current_identity(users.current(), identity)
    users_us = (time.perf_counter() - started) / count * 1e6
    return {
        "verify_cold_us": cold_us,
        "verify_cached_us": warm_us,
        "revocation_sqlite_us": revocation_us,
        "current_user_us": users_us,
    }


def _instructions(backend_port: int, quick: bool) -> dict[str, float] | None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return None
    base = common.workdir("auth-callgrind")
    args, port, credentials = _gateway(base, backend_port, "memory://")
    dumps = base / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dumps}.%p"]
    # The gateway starts itself again under `python -O` (addons.gateway.optimised).
    process = processes.start([*valgrind, "--trace-children=yes", *args], log=base / "log")
    asked = {
        "public": (PUBLIC, {}),
        "session": (PRIVATE, {"cookie": f"theme=dark; warren_session={credentials.session}"}),
        "oidc": (PRIVATE, {"cookie": f"theme=dark; warren_session={credentials.oidc}"}),
        "bearer": (PRIVATE, {"authorization": f"Bearer {credentials.bearer}"}),
    }
    count = 50 if quick else 300
    found: dict[str, float] = {}
    try:
        processes.wait_for_port(port, process, timeout=600)
        for host, headers in asked.values():
            _one_by_one(port, host, headers, 30)  # every cache warm
        for way, (host, headers) in asked.items():
            subprocess.run(
                ["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True
            )
            _one_by_one(port, host, headers, count)
            subprocess.run(
                ["callgrind_control", "-d", way, str(process.pid)], check=True, capture_output=True
            )
            found[way] = _dumped_instructions(dumps, way) / count
    finally:
        processes.stop(process, timeout=60)
    return found


def _one_by_one(port: int, host: str, headers: dict[str, str], count: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(count):
            connection.request("GET", "/bench", headers={"host": host, **headers})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{host} answered {answer.status} under callgrind")
    finally:
        connection.close()


def _dumped_instructions(dumps: Path, way: str) -> int:
    for path in sorted(dumps.parent.glob(dumps.name + ".*"), key=lambda p: p.stat().st_mtime):
        text = path.read_text(errors="replace")
        if re.search(rf"^desc: Trigger: dump {way}$", text, re.MULTILINE):
            total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
            if total is not None:
                return int(total.group(1))
    raise RuntimeError(f"no callgrind dump for {way} in {dumps.parent}")


def run(quick: bool) -> str:
    results: dict[str, object] = {}
    with common.backend() as backend_port:
        instructions = _instructions(backend_port, quick)
        if instructions is not None:
            results["instructions"] = instructions
        results["sqlite"] = _compare("sqlite", "memory://", backend_port, quick)
        with _redis() as redis_url:
            if redis_url is not None:
                results["redis"] = _compare("redis", redis_url, backend_port, quick)
    results["per_request"] = _per_request(quick)
    common.save("auth", results)
    return report(results)


_WAY_LABELS = {
    "session": "an account's session",
    "oidc": "an identity provider's session",
    "bearer": "an app's bearer token",
}


def report(results: dict[str, object]) -> str:
    rows = []
    for key, label in (("sqlite", "memory:// (SQLite state)"), ("redis", "redis://")):
        entry = results.get(key)
        if not isinstance(entry, dict):
            continue
        number = "1" if key == "sqlite" else "2"
        for way in WAYS:
            case = entry[way]
            public = statistics.median(case["public_rps"])
            candidate = statistics.median(case["rps"])
            cpu = case["cpu_us_per_request"]
            rows.append([
                f"{number}. {_WAY_LABELS[way]} vs public, {label}",
                f"{case['ratio']:.3f}",
                ">= 0.95",
                f"{candidate:.0f} vs {public:.0f} req/s (medians)",
            ])  # fmt: skip
            rows.append([
                f"{number}. the same in gateway CPU per request",
                f"{case['cpu_ratio']:.3f}",
                ">= 0.95",
                f"{statistics.median(cpu[way]):.0f} vs "
                f"{statistics.median(cpu['public']):.0f} us (medians)",
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
    if "current_user_us" in unit:
        rows.append([
            "3. the user's groups from users.yaml",
            f"{unit['current_user_us']:.2f} us",
            "",
            "a clock read and a dict lookup; the file is looked at every 0.5 s",
        ])  # fmt: skip
    instructions = results.get("instructions")
    if isinstance(instructions, dict):
        public = instructions["public"]
        for way in WAYS:
            rows.append([
                f"4. {_WAY_LABELS[way]}: public/way in instructions (callgrind)",
                f"{public / instructions[way]:.3f}",
                "",
                f"{instructions[way] / 1000:.0f}k vs {public / 1000:.0f}k per request",
            ])  # fmt: skip
    return common.table(rows, ["benchmark", "result", "target", "detail"])
