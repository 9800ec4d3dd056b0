"""Redis under Sentinel on loopback, all real processes: a primary, a replica of it, and three
redis-sentinel processes (Debian's redis-sentinel package) watching them with quorum 2, so a test
can kill the primary and have the replica promoted, as in production."""

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from demo import processes
from tests.support.ci import in_ci
from tests.support.redis import NO_PERSISTENCE, RedisServer, require_redis_server

REDIS_SENTINEL = Path("/usr/bin/redis-sentinel")
SERVICE = "mymaster"
DOWN_AFTER_MS = 1000  # how long the primary must be silent before a sentinel calls it down


def require_redis_sentinel() -> None:
    require_redis_server()
    if REDIS_SENTINEL.exists():
        return
    reason = f"{REDIS_SENTINEL} is missing (Debian package redis-sentinel; ./dev test installs it)"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def _ask(port: int, *words: str) -> bytes:
    request = f"*{len(words)}\r\n".encode()
    for word in words:
        request += f"${len(word.encode())}\r\n{word}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        return connection.recv(65536)


class SentinelCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for name in ("primary", "replica", "sentinels"):
            (directory / name).mkdir(parents=True)
        self.primary = RedisServer(directory / "primary")
        self.replica = RedisServer(
            directory / "replica",
            (*NO_PERSISTENCE, "--replicaof", "127.0.0.1", str(self.primary.port)),
        )
        self.sentinel_ports = [processes.free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """warren.yaml's `storage` for this service: every sentinel, then the service's name."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> "SentinelCluster":
        self.primary.start()
        self.replica.start()
        for port in self.sentinel_ports:
            config = self.directory / "sentinels" / f"{port}.conf"
            config.write_text(  # sentinel rewrites its file as it learns: one each, writable
                f"port {port}\nbind 127.0.0.1\ndir {self.directory / 'sentinels'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            process = processes.start(
                [str(REDIS_SENTINEL), str(config)],
                log=self.directory / "sentinels" / f"{port}.log",
                cwd=self.directory / "sentinels",
            )
            self.sentinels.append(process)
            processes.wait_for_port(port, process)
        self._wait_until_watching()
        return self

    def _wait_until_watching(self, timeout: float = 60.0) -> None:
        """Until every sentinel knows the replica (in sync) and both other sentinels: before
        that, a dead primary could not be failed over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            synced = b"master_link_status:up" in _ask(self.replica.port, "INFO", "replication")
            ready = synced and all(
                _ask(port, "SENTINEL", "SENTINELS", SERVICE).startswith(b"*2")
                and str(self.replica.port).encode() in _ask(port, "SENTINEL", "REPLICAS", SERVICE)
                for port in self.sentinel_ports
            )
            if ready:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the sentinels never all watched {SERVICE}: see {self.directory}")

    def master_port(self) -> int | None:
        """The master's port as the first sentinel answering names it."""
        for port in self.sentinel_ports:
            try:
                answer = _ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            except OSError:
                continue
            found = re.findall(rb"\$\d+\r\n([^\r]*)\r\n", answer)
            if len(found) == 2:
                return int(found[1])
        return None

    def kill_primary(self) -> None:
        """SIGKILL, as a crash or a lost machine: no goodbye to clients or sentinels."""
        process = self.primary.process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.primary.process = None

    def stop(self) -> None:
        for process in self.sentinels:
            processes.stop(process)
        self.replica.stop()
        self.primary.stop()
