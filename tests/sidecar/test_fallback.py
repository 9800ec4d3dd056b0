"""End to end, in network namespaces: a site whose network drops UDP to the node comes up over
the TCP/443 fallback (a WebSocket through the gateway's HTTPS listener), carries HTTP and raw
TCP through it, and moves back to UDP by itself when UDP passes again.

The topology is tests/support/tunnellab.py's; the site's router drops UDP towards the node's
WireGuard port with an nftables table of its own (TunnelLab.block_udp), as a restrictive
network would.
"""

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from demo import processes
from tests.support.netlab import Lab
from tests.support.netns import require
from tests.support.tunnellab import NODE_FOR_USER, TunnelLab, secret_and_hash
from tests.support.waiting import eventually

BACKEND, ECHO = 8000, 7000
TCP_RESOURCE = 25565


def policy(secret_hash: str) -> str:
    return f"""\
version: 1
sites:
  home: {{secret_sha256: "{secret_hash}"}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{site: home, host: 127.0.0.1, port: {BACKEND}}}]
  game:
    protocol: tcp
    port: {TCP_RESOURCE}
    auth: public
    targets: [{{site: home, host: 127.0.0.1, port: {ECHO}}}]
"""


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TunnelLab]:
    """A site up over TCP/443: UDP dropped before its agent starts."""
    require()
    lab = Lab()
    built: TunnelLab | None = None
    try:
        built = TunnelLab.build(lab, tmp_path_factory.mktemp("fallback"))
        secret, secret_hash = secret_and_hash()
        built.write_node(policy(secret_hash))
        built.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
        built.start_in_site(
            processes.python("-m", "tests.support.echo", "--tcp", str(ECHO)), "echo", ECHO
        )
        built.start_node()
        built.block_udp()
        built.start_agent("home", secret, "--fallback-after", "3", "--retry-udp", "4")
        eventually(lambda: built is not None and built.site_online("home"), timeout=60)
        yield built
    except BaseException:
        if built is not None:
            print(built.logs())
        raise
    finally:
        lab.close()


def transport(lab: TunnelLab) -> str:
    return str(lab.site_state("home").get("transport"))


def reaches_backend(lab: TunnelLab) -> bool:
    tag = uuid.uuid4().hex[:10]
    try:
        response = lab.request("app.example", f"/{tag}")
    except OSError:
        return False
    return response.status_code == 200 and response.json()["target"] == f"/{tag}"


def raw_tcp_echoes(lab: TunnelLab) -> bool:
    with lab.from_user(), socket.create_connection((NODE_FOR_USER, TCP_RESOURCE), 5) as conn:
        conn.sendall(b"ping")
        return conn.recv(100) == b"echo:ping"


def test_with_udp_dropped_the_site_comes_up_over_tcp_443_and_carries_http_and_raw_tcp(
    blocked: TunnelLab,
) -> None:
    try:
        assert transport(blocked) == "tcp"
        assert blocked.udp_dropped() > 0  # the agent did try UDP first
        assert eventually(lambda: reaches_backend(blocked), timeout=20)
        assert raw_tcp_echoes(blocked)
        shown = subprocess.run(
            processes.warren("status", "--config", str(blocked.config)),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tcp/443" in shown, shown
        # The stream's end on the node is a loopback socket: the node's WireGuard sees that.
        endpoint = str(blocked.site_state("home")["endpoint"])
        assert endpoint.startswith("127.0.0.1:")
        # One stream for longer than the gateway's head_timeout (10 s): a WebSocket is not an
        # idle connection waiting for its first request.
        time.sleep(11)
        assert blocked.site_state("home")["endpoint"] == endpoint
        assert reaches_backend(blocked)
    except BaseException:
        print(blocked.logs())
        raise


def test_when_udp_passes_again_the_site_moves_back_to_it(blocked: TunnelLab) -> None:
    try:
        blocked.allow_udp()
        assert eventually(lambda: transport(blocked) == "udp", timeout=60, interval=0.5)
        assert eventually(lambda: reaches_backend(blocked), timeout=20)
        assert raw_tcp_echoes(blocked)
        assert not str(blocked.site_state("home")["endpoint"]).startswith("127.0.0.1:")
        time.sleep(5)  # longer than a try: it stays on UDP
        assert transport(blocked) == "udp"
    except BaseException:
        print(blocked.logs())
        raise


def test_udp_blocked_again_midway_moves_the_site_back_to_the_stream(blocked: TunnelLab) -> None:
    try:
        assert eventually(lambda: transport(blocked) == "udp", timeout=60, interval=0.5)
        blocked.block_udp()
        # The tunnel dies on UDP, the link registers again over HTTPS, and its new session
        # completes no handshake over UDP: it falls back, with no restart.
        assert eventually(lambda: transport(blocked) == "tcp", timeout=60, interval=0.5)
        assert eventually(lambda: reaches_backend(blocked), timeout=30)
        assert raw_tcp_echoes(blocked)
        assert blocked.agents["home"].poll() is None
    except BaseException:
        print(blocked.logs())
        raise
