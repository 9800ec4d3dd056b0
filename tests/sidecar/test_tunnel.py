"""End to end, in network namespaces: a user, a node (gateway and sidecar) and a private site
(site agent and applications) behind a NAT router, so the node has no route to the site except
the tunnel the site dials.

One topology serves the module; every test leaves it working for the next one.
"""

import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from demo import processes
from tests.support.netlab import Lab, Namespace
from tests.support.netns import require
from tests.support.tunnellab import (
    GATEWAY_PORT,
    LAN,
    NODE_FOR_USER,
    SITE,
    TunnelLab,
    secret_and_hash,
)
from tests.support.waiting import eventually

BACKEND, ECHO, DATAGRAMS, SECOND = 8000, 7000, 7001, 8001
TCP_RESOURCE, UDP_RESOURCE = 25565, 25566


def policy(secret_hash: str, extra: str = "") -> str:
    return f"""\
version: 1
rules:
  - {{action: deny, cidr: 198.51.100.0/24}}
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
  voice:
    protocol: udp
    port: {UDP_RESOURCE}
    rules: [{{action: allow, cidr: 10.201.1.0/24}}]
    targets: [{{site: home, host: 127.0.0.1, port: {DATAGRAMS}}}]
{extra}"""


class Tunnel:
    def __init__(self, lab: TunnelLab, secret: str, secret_hash: str) -> None:
        self.lab = lab
        self.secret = secret
        self.secret_hash = secret_hash

    def online(self) -> bool:
        return self.lab.site_online("home")

    def reaches_backend(self, host: str = "app.example") -> bool:
        tag = uuid.uuid4().hex[:10]
        response = self.lab.request(host, f"/{tag}")
        return response.status_code == 200 and response.json()["target"] == f"/{tag}"


@pytest.fixture(scope="module")
def tunnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    require()
    lab = Lab()
    directory = tmp_path_factory.mktemp("tunnel")
    built: TunnelLab | None = None
    try:
        built = TunnelLab.build(lab, directory)
        secret, secret_hash = secret_and_hash()
        built.write_node(policy(secret_hash))
        built.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
        built.start_in_site(
            processes.python(
                "-m", "tests.support.echo", "--tcp", str(ECHO), "--udp", str(DATAGRAMS)
            ),
            "echo",
            ECHO,
        )
        built.start_node()
        built.start_agent("home", secret)
        made = Tunnel(built, secret, secret_hash)
        eventually(made.online, timeout=60, interval=0.5)
        yield made
    except BaseException:
        if built is not None:
            print(built.logs())
        raise
    finally:
        lab.close()


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "tunnel" in request.fixturenames:
        print(request.getfixturevalue("tunnel").lab.logs())


def test_a_request_from_the_user_reaches_the_private_backend_through_the_tunnel(
    tunnel: Tunnel,
) -> None:
    assert eventually(tunnel.reaches_backend, timeout=20)
    seen = tunnel.lab.request("app.example", "/who").json()
    # The site's application sees the gateway's tunnel address, and the client in the headers.
    assert seen["peer"] == "127.0.0.1"  # the agent connects locally
    forwarded = {name.lower(): value for name, value in seen["headers"]}
    assert forwarded["x-forwarded-for"] == "10.201.1.2"
    state = tunnel.lab.site_state("home")
    assert state["address"] == "100.89.0.2"
    assert state["last_handshake"] is not None
    assert state["rx_bytes"] > 0
    assert state["tx_bytes"] > 0
    shown = subprocess.run(
        processes.warren("status", "--config", str(tunnel.lab.config)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "failed_reloads" in shown  # the gateway's part is still there
    assert re.search(r"^home\s+yes\s+100\.89\.0\.2\s+\d+[smh] ago\s+\S+ \S*B", shown, re.M), shown


def test_the_node_has_no_way_to_the_site_but_the_tunnel(tunnel: Tunnel) -> None:
    with tunnel.lab.node.entered(), pytest.raises(OSError, match="unreachable"):
        socket.create_connection((SITE, BACKEND), timeout=2)
    # The agent listens on its tunnel address, bound to its WireGuard interface, and nowhere
    # else. (wireguard-go's own UDP socket is the tunnel's outside.)
    agent = tunnel.lab.agents["home"].pid
    listening = tunnel.lab.site.run(["ss", "-Hlntup"], check=True).stdout.splitlines()
    ours = [line.split()[4] for line in listening if f"pid={agent}," in line]
    interface = tunnel.lab.lab.interface("s0")
    assert len(ours) >= 4, listening  # http, tcp and udp forwards, and the probe answer
    assert all(local.startswith(f"100.89.0.2%{interface}:") for local in ours), listening


def test_raw_tcp_and_udp_resources_go_through_the_tunnel(tunnel: Tunnel) -> None:
    with tunnel.lab.from_user():
        with socket.create_connection((NODE_FOR_USER, TCP_RESOURCE), timeout=5) as connection:
            connection.sendall(b"ping")
            assert connection.recv(100) == b"echo:ping"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
            datagram.settimeout(5)
            datagram.sendto(b"ping", (NODE_FOR_USER, UDP_RESOURCE))
            assert datagram.recvfrom(100)[0] == b"echo:ping"


def test_registration_without_the_secret_changes_nothing(tunnel: Tunnel) -> None:
    from sidecar import wgkeys

    intruder = wgkeys.public_key(wgkeys.generate_private_key())
    trust = ssl.create_default_context(cafile=str(tunnel.lab.cert))
    with tunnel.lab.from_user(), httpx.Client(verify=trust, timeout=5) as client:
        for secret in ("", "wrong", tunnel.secret[:-1]):
            response = client.post(
                f"https://{NODE_FOR_USER}:{GATEWAY_PORT}/.warren/sites/register",
                json={"site": "home", "public_key": intruder},
                headers={"authorization": f"Bearer {secret}"} if secret else {},
            )
            assert response.status_code == 401, response.text
        good = {"authorization": f"Bearer {tunnel.secret}"}
        register = f"https://{NODE_FOR_USER}:{GATEWAY_PORT}/.warren/sites/register"
        for body in ("not json", '{"site": "home"}', '{"site": "home", "public_key": "c2hvcnQ="}'):
            response = client.post(register, content=body, headers=good)
            assert response.status_code == 400, response.text
    peers = device_peers(tunnel.lab)
    assert intruder not in peers
    assert len(peers) == 1
    assert tunnel.online()


def device_peers(lab: TunnelLab) -> list[str]:
    # wireguard-go's UAPI socket is reachable from any namespace: ask the node's interface.
    from sidecar import uapi

    path = uapi.socket_path(lab.lab.interface("n"))
    return [peer.public_key for peer in uapi.parse_peers(uapi.exchange(path, "get=1\n\n"))]


def test_a_site_removed_from_the_policy_loses_its_peer_and_comes_back_when_added(
    tunnel: Tunnel,
) -> None:
    lab = tunnel.lab
    without = policy(tunnel.secret_hash)
    without = without[: without.index("sites:")]  # no sites, no resources on them
    lab.policy_file.write_text(without)
    eventually(lambda: device_peers(lab) == [], timeout=20)
    assert lab.sidecar_status()["sites"] == []
    lab.policy_file.write_text(policy(tunnel.secret_hash))
    assert eventually(tunnel.online, timeout=60, interval=0.5)
    assert eventually(tunnel.reaches_backend, timeout=20)
    assert lab.agents["home"].poll() is None


def test_a_changed_secret_answers_every_request_in_flow_at_once(tunnel: Tunnel) -> None:
    """The gateway leaves the site the moment its policy or sites.json says so, and the sidecar
    removes the peer only after that: no request is sent into a tunnel that is going."""
    lab = tunnel.lab
    assert eventually(tunnel.reaches_backend, timeout=20)
    answers: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def flow() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status: int | str = lab.request("app.example", "/flowing", timeout=5).status_code
            except httpx.HTTPError as error:
                status = repr(error)
            answers.append((time.monotonic() - started, status))

    senders = [threading.Thread(target=flow) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        time.sleep(1)
        _, changed = secret_and_hash()
        lab.policy_file.write_text(policy(changed))
        # Past the sidecar's wait (2 x reload_poll, at least 1 s) and its peer removal.
        eventually(lambda: device_peers(lab) == [], timeout=20)
        time.sleep(2)
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    statuses = [status for _, status in answers]
    assert 200 in statuses, statuses
    assert statuses[-1] == 503, statuses
    # No timeout, no error, nothing else; a request in flight at the moment the site goes is
    # cut with 502 (addons.deadlines), so at most one per sender.
    assert set(statuses) <= {200, 502, 503}, statuses
    assert statuses.count(502) <= len(senders), statuses
    assert max(seconds for seconds, _ in answers) < 2, answers
    first_503 = statuses.index(503)
    # Three senders: a request that left before the change may land just after the first 503.
    assert statuses[first_503 + 3 :].count(200) == 0, statuses
    lab.policy_file.write_text(policy(tunnel.secret_hash))
    assert eventually(tunnel.online, timeout=60, interval=0.5)
    assert eventually(tunnel.reaches_backend, timeout=20)


def test_changed_forwards_reach_the_agent_without_a_restart(tunnel: Tunnel) -> None:
    lab = tunnel.lab
    agent = lab.agents["home"]
    lab.start_in_site(processes.backend(SECOND, "second"), "second", SECOND)
    extra = f"""\
  second:
    host: second.example
    auth: public
    targets: [{{site: home, host: 127.0.0.1, port: {SECOND}}}]
"""
    lab.policy_file.write_text(policy(tunnel.secret_hash, extra))

    def second() -> bool:
        response = lab.request("second.example", "/x")
        return response.status_code == 200 and response.json()["backend"] == "second"

    assert eventually(second, timeout=30, interval=0.5)
    assert agent.poll() is None


def test_a_sidecar_restart_keeps_the_site_reachable_at_the_same_address(tunnel: Tunnel) -> None:
    lab = tunnel.lab
    before = lab.site_state("home")["address"]
    lab.stop_sidecar()
    lab.start_sidecar()
    assert eventually(tunnel.online, timeout=60, interval=0.5)
    assert lab.site_state("home")["address"] == before
    assert eventually(tunnel.reaches_backend, timeout=20)


def connects(namespace: Namespace, address: str, port: int) -> bool:
    with namespace.entered():
        try:
            socket.create_connection((address, port), timeout=2).close()
        except OSError:
            return False
    return True


def take_over_the_site(lab: TunnelLab) -> None:
    """What a site's root could do: route the node's LAN into the tunnel and accept its
    answers (the agent itself routes only the node's tunnel address)."""
    from sidecar import uapi
    from sidecar.device import Peer

    interface = lab.lab.interface("s0")
    path = uapi.socket_path(interface)
    (node,) = uapi.parse_peers(uapi.exchange(path, "get=1\n\n"))
    allowed = (*node.allowed_ips, f"{LAN.rsplit('.', 1)[0]}.0/24")
    uapi.exchange(path, uapi.set_request(peers=[Peer(node.public_key, allowed)]))
    lab.site.ip("route", "replace", f"{LAN}/32", "dev", interface, "src", "100.89.0.2")


def masquerade_the_lan(lab: TunnelLab) -> None:
    """What Docker does for its bridges: what leaves the node from them leaves as the node."""
    lab.node.run(
        ["nft", "-f", "-"],
        check=True,
        stdin=(
            "table ip lannat\ndelete table ip lannat\ntable ip lannat {\n chain post {\n"
            "  type nat hook postrouting priority 100;\n"
            f'  ip saddr {LAN}/24 oifname "{lab.lab.interface("n")}" masquerade\n }}\n}}\n'
        ),
    )


def restart_sidecar(tunnel: Tunnel, isolate: bool) -> None:
    lab = tunnel.lab
    lab.write_node(policy(tunnel.secret_hash), isolate=isolate)
    lab.stop_sidecar()
    lab.start_sidecar()
    assert eventually(tunnel.online, timeout=60, interval=0.5)
    assert eventually(tunnel.reaches_backend, timeout=20)


def isolation_table(lab: TunnelLab) -> str | None:
    listed = lab.node.run(["nft", "list", "table", "inet", "warren"])
    return listed.stdout if listed.returncode == 0 else None


def test_a_site_reaches_nothing_behind_a_forwarding_node_while_isolated(tunnel: Tunnel) -> None:
    lab = tunnel.lab
    lan = lab.add_lan()
    with lan.entered():
        listener = socket.create_server((LAN, 9000))
    lab.set_forwarding(True)
    masquerade_the_lan(lab)
    try:
        assert isolation_table(lab) is not None  # isolate is on unless warren.yaml says no
        take_over_the_site(lab)
        assert not connects(lab.site, LAN, 9000)  # the site into the node's other networks
        assert not connects(lan, "100.89.0.2", BACKEND)  # a container past the gateway
        assert connects(lab.user, NODE_FOR_USER, GATEWAY_PORT)  # the node itself: not forwarded
        assert tunnel.reaches_backend()

        restart_sidecar(tunnel, isolate=False)
        assert isolation_table(lab) is None
        take_over_the_site(lab)
        # What the table is for: without it, both ways are open on a forwarding node.
        assert eventually(lambda: connects(lab.site, LAN, 9000), timeout=10)
        assert connects(lan, "100.89.0.2", BACKEND)

        restart_sidecar(tunnel, isolate=True)
        # A crash leaves the table in place (closed), and the next start makes it anew.
        assert lab.sidecar is not None
        lab.sidecar.kill()
        lab.sidecar.wait()
        lab.node.processes.remove(lab.sidecar)
        lab.sidecar = None
        assert isolation_table(lab) is not None
        lab.start_sidecar()
        assert eventually(tunnel.online, timeout=60, interval=0.5)
        listed = isolation_table(lab)
        assert listed is not None
        assert listed.count("drop") == 2
        take_over_the_site(lab)
        assert not connects(lab.site, LAN, 9000)
        assert not connects(lan, "100.89.0.2", BACKEND)
        assert eventually(tunnel.reaches_backend, timeout=20)
        # A stopped sidecar takes its table with it.
        lab.stop_sidecar()
        assert isolation_table(lab) is None
        lab.start_sidecar()
        assert eventually(tunnel.online, timeout=60, interval=0.5)
    finally:
        listener.close()
        lab.set_forwarding(False)
        lab.node.run(["nft", "delete", "table", "ip", "lannat"])
        if lab.sidecar is None:
            lab.start_sidecar()


@pytest.mark.parametrize("side", ["node", "site"])
def test_a_deleted_interface_is_made_again(tunnel: Tunnel, side: str) -> None:
    lab = tunnel.lab
    namespace, interface = (
        (lab.node, lab.lab.interface("n"))
        if side == "node"
        else (lab.site, lab.lab.interface("s0"))
    )

    def index() -> str | None:
        try:
            return namespace.ip("-o", "link", "show", interface).split(":")[0]
        except RuntimeError:
            return None

    before = index()
    namespace.ip("link", "del", interface)  # wireguard-go exits with it
    eventually(lambda: index() not in (None, before), timeout=30, interval=0.5)
    assert eventually(tunnel.reaches_backend, timeout=60, interval=0.5)


def test_traffic_flows_again_after_the_link_is_cut_for_30_seconds(tunnel: Tunnel) -> None:
    lab = tunnel.lab
    running = [p.pid for p in (lab.gateway, lab.sidecar, lab.agents["home"]) if p is not None]
    assert eventually(tunnel.reaches_backend, timeout=20)
    lab.cut()
    cut_at = time.monotonic()
    try:
        # The site leaves routing within seconds: a 503 page, not a hanging request.
        eventually(lambda: lab.request("app.example", "/cut").status_code == 503, timeout=15)
        assert not tunnel.online()
        # Through the rest of the 30-second outage, every request is answered at once with 503.
        while time.monotonic() - cut_at < 30:
            assert lab.request("app.example", "/cut", timeout=3).status_code == 503
            time.sleep(1)
    finally:
        lab.restore()
    assert eventually(tunnel.reaches_backend, timeout=90, interval=0.5)
    assert [p.pid for p in (lab.gateway, lab.sidecar, lab.agents["home"]) if p is not None] == (
        running
    )
    assert all(p.poll() is None for p in (lab.gateway, lab.sidecar, lab.agents["home"]) if p)
