"""A real `warren sidecar` process keeps policy.yaml current the way every Warren process does:
SIGHUP and `reload` on its control socket (its file watch is core.reloading's own test), and a
file that does not validate leaves the last good policy running; one whose subnet overlaps a
live node's does not start."""

import asyncio
import hashlib
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from core import control
from core.cluster.records import NodeRecord, WireGuardFacts
from core.cluster.registry import publish
from core.storage import redis_client
from core.tunnels import sidecar_socket
from demo import processes
from tests.support.netlab import Lab
from tests.support.notify import NotifySocket
from tests.support.redis import REDIS_SERVER, require_redis_server
from tests.support.tunnellab import secret_and_hash


def policy(*sites: str) -> str:
    lines = "".join(f'  {site}: {{secret_sha256: "{secret_and_hash()[1]}"}}\n' for site in sites)
    return f"version: 1\nsites:\n{lines}"


def within(seconds: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds}s"
        time.sleep(0.05)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_the_sidecar_reloads_on_sighup_and_on_its_socket(lab: Lab, tmp_path: Path) -> None:
    first = policy("home")
    (tmp_path / "policy.yaml").write_text(first)
    (tmp_path / "warren.yaml").write_text(
        "policy_file: policy.yaml\nstate_dir: state\nreload_poll: 1h\n"
        f"wireguard: {{interface: {lab.interface('n')}, subnet: 100.89.0.0/24, isolate: false}}\n"
    )
    log = tmp_path / "sidecar.log"
    process = lab.namespace("n").start(
        processes.warren("sidecar", "--config", str(tmp_path / "warren.yaml")), log=log
    )
    socket = sidecar_socket(tmp_path / "state")
    within(30, socket.is_socket)

    second = policy("home", "office")
    (tmp_path / "policy.yaml").write_text(second)
    process.send_signal(signal.SIGHUP)
    within(10, lambda: f"policy {digest(second)} loaded" in log.read_text())

    third = policy("home", "office", "lab")
    (tmp_path / "policy.yaml").write_text(third)
    reply = control.call(socket, "reload")
    assert (reply["ok"], reply["digest"]) == (True, digest(third))

    (tmp_path / "policy.yaml").write_text("version: 1\nsites: {home: {secret_sha256: [}\n")
    refused = control.call(socket, "reload")
    assert (refused["ok"], refused["digest"]) == (False, digest(third))
    assert "not valid YAML" in refused["error"]
    assert "sites" in control.call(socket, "status")

    processes.stop(process)
    assert process.returncode == 0
    assert not socket.exists()


def test_the_sidecar_says_ready_once_its_interface_and_api_are_up(lab: Lab, tmp_path: Path) -> None:
    interface = lab.interface("n")
    (tmp_path / "policy.yaml").write_text(policy("home"))
    (tmp_path / "warren.yaml").write_text(
        "policy_file: policy.yaml\nstate_dir: state\n"
        f"wireguard: {{interface: {interface}, subnet: 100.89.0.0/24, isolate: false}}\n"
    )
    node = lab.namespace("n")
    with NotifySocket() as systemd:
        process = node.start(
            processes.warren("sidecar", "--config", str(tmp_path / "warren.yaml")),
            log=tmp_path / "sidecar.log",
            env=systemd.env,
        )
        message = systemd.receive()
    assert message == f"READY=1\nSTATUS={interface} up; registration API on 127.0.0.1:51821"
    assert "100.89.0.1/24" in node.ip("address", "show", interface)  # up before it said so
    with node.entered():
        socket.create_connection(("127.0.0.1", 51821), timeout=5).close()
    processes.stop(process)


def test_a_sidecar_whose_subnet_overlaps_a_live_nodes_refuses_to_start(
    lab: Lab, tmp_path: Path
) -> None:
    require_redis_server()
    node = lab.namespace("n")
    redis = node.start(
        [str(REDIS_SERVER), "--port", "6379", "--bind", "127.0.0.1", "--save", ""],
        log=tmp_path / "redis.log",
    )
    url = "redis://127.0.0.1:6379/0"

    async def node_a_is_live() -> None:
        client = redis_client(url)
        try:
            now = time.time()
            facts = WireGuardFacts(subnet="100.89.1.0/24")
            record = NodeRecord(name="a", instance="x", heartbeat=now, started=now, wireguard=facts)
            await publish(client, record, ttl=300)
        finally:
            await client.aclose()

    with node.entered():
        processes.wait_for_port(6379, redis)
        asyncio.run(node_a_is_live())
    (tmp_path / "policy.yaml").write_text(policy("home"))
    (tmp_path / "warren.yaml").write_text(
        f"policy_file: policy.yaml\nstate_dir: state\nstorage: {url}\nnode: {{name: b}}\n"
        f"wireguard: {{interface: {lab.interface('n')}, subnet: 100.89.0.0/16, isolate: false}}\n"
    )
    refused = node.run(processes.warren("sidecar", "--config", str(tmp_path / "warren.yaml")))
    assert refused.returncode == 1, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "wireguard.subnet 100.89.0.0/16 overlaps node a's 100.89.1.0/24" in line
    assert lab.interface("n") not in node.ip("link", "show")  # refused before any interface
