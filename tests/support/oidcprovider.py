"""A real OpenID Connect provider for tests: panva's oidc-provider (Node, tests/support/oidc/)
on loopback, with its development login (any name, any password) and consent pages. The login
name is the user's `sub`; `accounts` gives their e-mail, email_verified and groups."""

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo import processes
from tests.support.ci import in_ci

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "warren"
CLIENT_SECRET = "test-client-secret-0123456789"  # the test provider's client


def require_node() -> None:
    """Node and the npm packages (`./dev test` installs them); skipped outside CI only."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (HERE / "node_modules" / "oidc-provider").is_dir():
        missing = "run `npm ci --prefix tests/support/oidc` (./dev test does)"
    if missing is None:
        return
    if in_ci():
        raise RuntimeError(missing)
    pytest.skip(missing)


@dataclass
class OidcProvider:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, name: str = "test", title: str = "Test IdP", **extra: Any) -> str:
        """warren.yaml's `oidc:` section for this provider (a YAML flow mapping)."""
        fields = {
            "title": title,
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **extra,
        }
        return f"oidc:\n  {name}: {json.dumps(fields)}\n"

    def forge(self, mode: str) -> None:
        """What the token endpoint answers next: "signature" (an ID token whose signature is
        broken), "garbage" (not JSON) or "off"."""
        httpx.post(
            f"{self.issuer}/test/forge", params={"mode": mode}, timeout=10
        ).raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)


def start_provider(
    directory: Path, redirect_uri: str, accounts: dict[str, dict[str, Any]] | None = None
) -> OidcProvider:
    require_node()
    port = processes.free_port()
    config = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": redirect_uri,
        "accounts": accounts or {},
    }
    provider = OidcProvider(port, directory / "oidc-provider.log", accounts=accounts or {})
    provider.process = processes.start(
        ["node", str(HERE / "provider.mjs"), str(port), json.dumps(config)],
        log=provider.log,
        cwd=HERE,
    )
    try:
        processes.wait_for_port(port, provider.process, timeout=30)
    except (RuntimeError, TimeoutError) as error:
        provider.stop()
        raise RuntimeError(f"oidc-provider did not start: {error}") from error
    return provider
