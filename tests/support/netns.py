"""Whether this machine can run the tunnel tests: outside CI a test without what it needs skips
with the reason; in CI it fails."""

import os
import shutil
from pathlib import Path

import pytest

from tests.support.ci import in_ci


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces and WireGuard interfaces"
    for tool, package in (
        ("ip", "iproute2"),
        ("wireguard-go", "wireguard-go"),
        ("nft", "nftables"),
    ):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian package {package}; ./dev test installs it)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun for wireguard-go"
    return None


def require() -> None:
    reason = missing()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI must run the tunnel tests, but this machine {reason}")
    pytest.skip(reason)
