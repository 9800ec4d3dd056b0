"""A stand-in for systemd's notify socket: it receives what a `Type=notify` service sends."""

import socket
import tempfile
from pathlib import Path


class NotifySocket:
    """Bound in a short directory of its own: a Unix socket's path holds at most 107 bytes, and
    a path (not an abstract name) reaches processes in other network namespaces too."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="warren-notify-"))
        self.path = self.directory / "notify"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def receive(self, timeout: float = 30.0) -> str:
        """The next message; TimeoutError when none arrives."""
        self.socket.settimeout(timeout)
        return self.socket.recv(4096).decode()

    def pending(self) -> str | None:
        """A message already sent, if there is one, without waiting."""
        self.socket.setblocking(False)
        try:
            return self.socket.recv(4096).decode()
        except BlockingIOError:
            return None

    def close(self) -> None:
        self.socket.close()
        self.path.unlink(missing_ok=True)
        self.directory.rmdir()

    def __enter__(self) -> "NotifySocket":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
