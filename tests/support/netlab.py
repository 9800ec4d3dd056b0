"""Network namespaces joined by veth pairs, for the tunnel tests and benchmarks.

Whoever makes a Lab owns everything in it: random names, private addresses only inside the
namespaces, and `close` removes the namespaces with every process in them whatever happened.
Needs root.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from demo import processes


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.processes: list[subprocess.Popen[bytes]] = []

    def ip(self, *args: str) -> str:
        return ip("-n", self.name, *args)

    def command(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def start(
        self, args: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = processes.start(self.command(args), log=log, env=env)
        self.processes.append(process)
        return process

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = False,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(args), input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} in {self.name}: {done.stderr.strip()}")
        return done

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run this thread (and what it starts) inside the namespace for a while."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            os.setns(there, os.CLONE_NEWNET)
            yield
        finally:
            os.setns(home, os.CLONE_NEWNET)
            os.close(home)
            os.close(there)

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in ip("netns", "pids", self.name).split()]
        except RuntimeError:
            return []


def eventually_empty(namespace: Namespace, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while namespace.pids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Lab:
    """A set of namespaces joined by veth pairs; `close` undoes all of it."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.namespaces: list[Namespace] = []
        self._links = 0

    def namespace(self, role: str) -> Namespace:
        namespace = Namespace(f"wrn-{self.tag}-{role}")
        ip("netns", "add", namespace.name)
        self.namespaces.append(namespace)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    def link(self, a: Namespace, a_address: str, b: Namespace, b_address: str) -> tuple[str, str]:
        """A veth pair between two namespaces, each end with its address (CIDR), both up."""
        self._links += 1
        a_name, b_name = f"v{self.tag}{self._links}a", f"v{self.tag}{self._links}b"
        a.ip("link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b.name)
        for namespace, name, address in ((a, a_name, a_address), (b, b_name, b_address)):
            namespace.ip("addr", "add", address, "dev", name)
            namespace.ip("link", "set", name, "up")
        return a_name, b_name

    def interface(self, role: str) -> str:
        """A WireGuard interface name unique on the host (wireguard-go's sockets are shared)."""
        return f"wg{self.tag}{role}"[:15]

    def close(self) -> None:
        for namespace in self.namespaces:
            for process in namespace.processes:
                processes.stop(process)
        for namespace in self.namespaces:
            # What our processes started in there and left behind (wireguard-go): asked to stop
            # first, so it removes its UAPI socket, then made to.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in namespace.pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                if eventually_empty(namespace):
                    break
        for stale in Path("/var/run/wireguard").glob(f"wg{self.tag}*.sock"):
            stale.unlink(missing_ok=True)
        for namespace in self.namespaces:
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", namespace.name)
