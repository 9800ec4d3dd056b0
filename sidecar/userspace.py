"""The userspace backend: a wireguard-go process per interface, driven over its UAPI socket."""

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import IO

from sidecar import links, uapi
from sidecar.device import Backend, DeviceError, Peer, PeerStatus

log = logging.getLogger("warren.wireguard")

# wireguard-go refuses to run where it believes a kernel module could do the job; in containers
# and on kernels without the module it is the only way, so Warren says it knows.
ENVIRONMENT = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "LOG_LEVEL": "error"}


def socket_alive(interface: str) -> bool:
    try:
        uapi.exchange(uapi.socket_path(interface), "get=1\n\n", timeout=2)
    except (OSError, DeviceError):
        return False
    return True


class UserspaceDevice:
    backend: Backend = "userspace"

    def __init__(self, interface: str, process: subprocess.Popen[bytes] | None) -> None:
        self.interface = interface
        self.process = process
        self._socket = uapi.socket_path(interface)

    @classmethod
    def start(cls, interface: str, timeout: float = 10.0) -> "UserspaceDevice":
        binary = shutil.which("wireguard-go")
        if binary is None:
            raise DeviceError(
                "no WireGuard kernel module and no wireguard-go: install the wireguard-go package"
            )
        stale = uapi.socket_path(interface)
        if stale.exists() and not socket_alive(interface):
            stale.unlink(missing_ok=True)
        process = subprocess.Popen(
            [binary, "-f", interface],
            env={**os.environ, **ENVIRONMENT},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        threading.Thread(target=_relay_log, args=(process.stdout,), daemon=True).start()
        device = cls(interface, process)
        deadline = time.monotonic() + timeout
        while not (socket_alive(interface) and links.index_of(interface) is not None):
            if process.poll() is not None:
                raise DeviceError(f"wireguard-go exited with {process.returncode}")
            if time.monotonic() > deadline:
                device.close()
                raise DeviceError(f"wireguard-go did not bring up {interface} in {timeout}s")
            time.sleep(0.02)
        log.info("%s: wireguard-go (pid %d) runs the interface", interface, process.pid)
        return device

    @classmethod
    def adopt(cls, interface: str) -> "UserspaceDevice":
        if not socket_alive(interface):
            raise DeviceError(f"{interface} exists but no wireguard-go answers for it")
        log.info("%s: adopting the running wireguard-go", interface)
        return cls(interface, None)

    def configure(self, private_key: str, listen_port: int | None, peers: Sequence[Peer]) -> None:
        uapi.exchange(
            self._socket,
            uapi.set_request(
                private_key=private_key, listen_port=listen_port, replace_peers=True, peers=peers
            ),
        )

    def set_peers(self, peers: Sequence[Peer], remove: Sequence[str] = ()) -> None:
        if peers or remove:
            uapi.exchange(self._socket, uapi.set_request(peers=peers, remove=remove))

    def peers(self) -> list[PeerStatus]:
        return uapi.parse_peers(uapi.exchange(self._socket, "get=1\n\n"))

    def alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False
        return links.index_of(self.interface) is not None and socket_alive(self.interface)

    def close(self) -> None:
        # Deleting the tun device makes wireguard-go exit and remove its socket.
        with contextlib.suppress(Exception):
            links.delete(self.interface)
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _relay_log(stream: IO[bytes]) -> None:
    for raw in stream:
        line = raw.decode(errors="replace").strip()
        if line and line[0] not in "│┌└":  # its boxed banner about the kernel module
            log.info("wireguard-go: %s", line)
