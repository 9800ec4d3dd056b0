"""Deadlines towards targets (addons.deadlines) in a real gateway: a target that never completes
the TCP handshake, one that accepts and never answers, and a site that goes offline while
requests to it wait."""

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from core.tunnels import Forward, SiteState, encode_sites
from demo import processes
from tests.support.gateway import GatewayFactory
from tests.support.waiting import eventually

SECRET_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class BlackHole:
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connection to
    it neither opens nor fails, like one into a tunnel whose far end is gone."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.server.close()


class Silent:
    """Accepts and reads, never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.server.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    backend = Silent()
    yield backend
    backend.close()


def resource(name: str, port: int, timeouts: str, site: str = "") -> str:
    target = f"{{{'site: home, ' if site else ''}host: 127.0.0.1, port: {port}}}"
    return f"""\
  {name}:
    host: {name}.test
    auth: public
    targets: [{target}]
    timeouts: {timeouts}
"""


def test_a_target_that_does_not_connect_is_given_up_with_504(
    black_hole: BlackHole, start_gateway: GatewayFactory
) -> None:
    policy = "version: 1\nresources:\n" + resource("hole", black_hole.port, "{connect: 1s}")
    gateway = start_gateway(policy)
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=20) as client:
        started = time.monotonic()
        response = client.get("/", headers={"host": "hole.test", "accept": "application/json"})
        waited = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["reference"] in gateway.logs()
    assert waited < 15  # not the kernel's two minutes of SYN retries
    assert "did not connect within 1s" in gateway.logs()


def test_a_response_that_does_not_start_in_time_is_504(
    silent: Silent, start_gateway: GatewayFactory
) -> None:
    policy = "version: 1\nresources:\n" + resource("slow", silent.port, "{first_byte: 1s}")
    gateway = start_gateway(policy)
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=20) as client:
        response = client.get("/", headers={"host": "slow.test", "accept": "text/html"})
    assert response.status_code == 504
    assert "The application did not start answering in time." in response.text
    assert "no response within 1s" in gateway.logs()


def test_requests_to_a_site_that_goes_offline_are_answered_502_at_once(
    silent: Silent, start_gateway: GatewayFactory
) -> None:
    policy = (
        f'version: 1\nsites:\n  home: {{secret_sha256: "{SECRET_SHA256}"}}\nresources:\n'
        + resource("home", 8080, "{first_byte: 60s}", site="home")
    )
    gateway = start_gateway(policy)
    state = gateway.directory / "state"
    state.mkdir(exist_ok=True)
    forwards = [Forward("tcp", "127.0.0.1", 8080, silent.port)]

    def report(online: bool) -> None:
        site = SiteState("127.0.0.1", online, forwards, SECRET_SHA256)
        (state / "sites.json").write_bytes(encode_sites({"home": site}))

    report(True)
    eventually(lambda: "site home is online" in gateway.logs())
    answers: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as client:
            answers.append(client.get("/", headers={"host": "home.test"}))

    waiting = [threading.Thread(target=ask) for _ in range(3)]
    for thread in waiting:
        thread.start()
    eventually(lambda: len(silent.accepted) == 3)
    started = time.monotonic()
    report(False)
    for thread in waiting:
        thread.join(30)
    assert [a.status_code for a in answers] == [502, 502, 502]
    assert time.monotonic() - started < 20  # the reload poll, not the 60 s first-byte deadline
    assert "site home left routing: 3 requests" in gateway.logs()


def _accept_saying(server: socket.socket, first: bytes) -> socket.socket:
    while True:
        accepted, _ = server.accept()
        if accepted.recv(len(first)) == first:
            return accepted
        accepted.close()


def test_a_raw_connection_to_a_site_that_goes_offline_is_closed(
    start_gateway: GatewayFactory,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as echo:
        port = processes.free_port()
        policy = f"""\
version: 1
sites:
  home: {{secret_sha256: "{SECRET_SHA256}"}}
resources:
  game:
    protocol: tcp
    port: {port}
    auth: public
    targets: [{{site: home, host: 10.9.9.9, port: 25565}}]
"""
        gateway = start_gateway(policy)
        state = gateway.directory / "state"
        state.mkdir(exist_ok=True)
        forwards = [Forward("tcp", "10.9.9.9", 25565, echo.getsockname()[1])]

        def report(online: bool) -> None:
            site = SiteState("127.0.0.1", online, forwards, SECRET_SHA256)
            (state / "sites.json").write_bytes(encode_sites({"home": site}))

        report(True)
        eventually(lambda: "site home is online" in gateway.logs())
        processes.wait_for_port(port, gateway.process)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
            client.sendall(b"hello")
            # The target is connected as a connection opens (a server may speak first): the
            # port probe's connection came and went before this one.
            accepted = _accept_saying(echo, b"hello")
            with accepted:
                report(False)
                assert client.recv(10) == b""  # closed by the gateway, before the timeout
