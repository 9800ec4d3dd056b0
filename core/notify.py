"""Telling systemd that a service is up, for `Type=notify` units: `systemctl start` returns, and
`systemctl status` says active, once the process listens, not merely once it was started.

The protocol (sd_notify(3)) is one datagram, `READY=1`, to the Unix socket systemd names in
$NOTIFY_SOCKET; these few lines are all of it, so no library (systemd's own Python binding
needs libsystemd to build). Without the variable (not under systemd) nothing is sent.
"""

import logging
import os
import socket

log = logging.getLogger("warren.notify")


def notify_ready(status: str = "") -> None:
    """READY=1, and a STATUS= line `systemctl status` shows, e.g. where the process listens."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket (sd_notify(3)): a leading NUL byte
        address = "\0" + address[1:]
    message = "READY=1" + (f"\nSTATUS={status}" if status else "")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as error:  # systemd then gives up on the start itself (TimeoutStartSec=)
        log.warning("could not tell systemd this service is ready (%s): %s", address, error)
