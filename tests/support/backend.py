"""The demo backend (demo.backend) on loopback, and what it recorded."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from demo import processes


@dataclass
class Backend:
    port: int

    def records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"http://127.0.0.1:{self.port}/.records").json()
        return records

    def received(self, marker: str) -> list[dict[str, Any]]:
        """What arrived whose target contains `marker` (tests use unique paths)."""
        return [r for r in self.records() if marker in r["target"]]


@contextmanager
def running_backend(name: str = "backend") -> Iterator[Backend]:
    port = processes.free_port()
    process = processes.start(processes.backend(port, name))
    try:
        processes.wait_for_port(port, process)
        yield Backend(port)
    finally:
        processes.stop(process)
