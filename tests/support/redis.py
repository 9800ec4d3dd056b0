"""A real redis-server (Debian's package) on a free loopback port, which a test can stop and start
again on the same port to play an outage."""

import socket
import subprocess
from pathlib import Path

import pytest

from demo import processes
from tests.support.ci import in_ci

REDIS_SERVER = Path("/usr/bin/redis-server")


# Persisting nothing, as tests want by default: a restart is then an outage that loses it all.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class RedisServer:
    def __init__(self, directory: Path, options: tuple[str, ...] = NO_PERSISTENCE) -> None:
        self.directory = directory
        self.port = processes.free_port()
        self.log = directory / "redis.log"
        self.options = options  # redis-server's own, e.g. ("--appendonly", "yes")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += [*self.options, "--dir", str(self.directory)]
        self.process = processes.start(args, log=self.log, cwd=self.directory)
        processes.wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None

    def command(self, *words: str) -> bytes:
        """One command in RESP over a plain socket (no client library in the way)."""
        request = f"*{len(words)}\r\n".encode()
        for word in words:
            request += f"${len(word.encode())}\r\n{word}\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            return connection.recv(65536)


def require_redis_server() -> None:
    if REDIS_SERVER.exists():
        return
    reason = f"{REDIS_SERVER} is missing (Debian package redis-server; ./dev test installs it)"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)
