"""A request whose connection to a target fails, in a real gateway (addons.retry, addons.layers,
core.balance): an idempotent one goes once to the other target; one with a body, or one whose
target had already answered part of it, does not; and a target that refused is passed over
without `health:` until its back-off is over (passive ejection)."""

import socket
import threading
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from demo.processes import free_port
from tests.addons.test_deadlines import BlackHole
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_raw, status_of


def marker() -> str:
    return uuid.uuid4().hex[:12]


class HalfAnswer:
    """A target that accepts, reads a request, sends the head and part of the body of a 200 and
    closes: it died mid-response."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "HalfAnswer":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with connection:
                self.requests.append(connection.recv(65536))
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")


def resource(name: str, first: int, second: int, extra: str = "") -> str:
    # round_robin's first pick is the first target: the closed one goes first.
    return f"""\
  {name}:
    host: {name}.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {first}}}, {{host: 127.0.0.1, port: {second}}}]
{extra}"""


class Shared(NamedTuple):
    gateway: Gateway
    backend: RawBackend
    closed: dict[str, int]  # resource -> its closed target's port (ejection is per target)
    half: HalfAnswer
    holes: tuple[int, ...]  # targets that swallow SYNs


@pytest.fixture(scope="module")
def shared(start_module_gateway: GatewayFactory) -> Iterator[Shared]:
    names = ("get", "post", "put", "delete", "eject")
    closed = {name: free_port() for name in names}
    holes = [BlackHole() for _ in range(3)]
    with RawBackend() as backend, HalfAnswer() as half:
        open_ = backend.port
        resources = "".join(
            resource(
                name, closed[name], open_, "    retry: {methods: [GET, PUT]}\n" * (name == "put")
            )
            for name in names
        )
        resources += resource("half", half.port, open_)
        fast = "    timeouts: {connect: 1s}\n"
        resources += resource("hole", holes[0].port, open_, fast)
        resources += resource("holes", holes[1].port, holes[2].port, fast)
        gateway = start_module_gateway(f"version: 1\nresources:\n{resources}")
        yield Shared(gateway, backend, closed, half, tuple(hole.port for hole in holes))
    for hole in holes:
        hole.close()


def request(method: str, host: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    return f"{head}Connection: close\r\n\r\n".encode() + body


def test_a_get_whose_target_refuses_goes_to_the_other_target(shared: Shared) -> None:
    gateway, closed = shared.gateway, shared.closed["get"]
    mark = marker()
    response = gateway.get("get.test", f"/{mark}")
    assert response.status_code == 200
    assert shared.backend.wait_for(mark.encode())
    assert f"GET get: 127.0.0.1:{closed} failed to connect, trying 127.0.0.1:" in gateway.logs()


def test_a_post_with_a_body_is_not_retried(shared: Shared) -> None:
    gateway, mark = shared.gateway, marker()
    answer = send_raw(gateway.port, request("POST", "post.test", f"/{mark}", b"pay=1"))
    assert status_of(answer) == 502
    assert not any(mark.encode() in r for r in shared.backend.requests())


def test_a_put_is_retried_where_the_resource_allows_it_and_a_delete_is_not(
    shared: Shared,
) -> None:
    gateway, put, delete = shared.gateway, marker(), marker()
    answer = send_raw(gateway.port, request("PUT", "put.test", f"/{put}", b"the body"))
    assert status_of(answer) == 200
    assert shared.backend.wait_for(put.encode()).endswith(b"the body")
    answer = send_raw(gateway.port, request("DELETE", "delete.test", f"/{delete}"))
    assert status_of(answer) == 502
    assert not any(delete.encode() in r for r in shared.backend.requests())


def test_a_target_that_died_mid_response_is_not_retried(shared: Shared) -> None:
    gateway, mark = shared.gateway, marker()
    # The gateway reads a small response whole before it answers: the client gets 502, not the
    # half of the body, and the other target never sees the request.
    assert gateway.get("half.test", f"/{mark}").status_code == 502
    assert any(mark.encode() in r for r in shared.half.requests)
    assert not any(mark.encode() in r for r in shared.backend.requests())


def test_a_refusing_target_is_passed_over_without_health_checks(shared: Shared) -> None:
    # POSTs are never retried: only the first one meets the closed target, and the ones after it
    # all go to the open one, round_robin and all, as long as the back-off lasts (5s).
    gateway, closed = shared.gateway, shared.closed["eject"]
    marks = [marker() for _ in range(6)]
    answers = [send_raw(gateway.port, request("POST", "eject.test", f"/{m}", b"x")) for m in marks]
    assert [status_of(a) for a in answers] == [502, 200, 200, 200, 200, 200]
    for mark in marks[1:]:
        assert shared.backend.wait_for(mark.encode())
    ejected = f"target 127.0.0.1:{closed} failed to connect: out of routing for 5s"
    assert gateway.logs().count(ejected) == 1


def test_a_get_whose_target_does_not_connect_in_time_goes_to_the_other_target(
    shared: Shared,
) -> None:
    gateway, mark = shared.gateway, marker()
    assert gateway.get("hole.test", f"/{mark}").status_code == 200
    assert shared.backend.wait_for(mark.encode())
    assert "GET hole: " in gateway.logs()


def test_the_retry_has_the_same_connect_deadline_and_its_failure_answers(shared: Shared) -> None:
    # Both targets swallow SYNs: each attempt is given up after timeouts.connect (not the
    # kernel's two minutes), the client gets the 504 of the second, and both are ejected.
    gateway = shared.gateway
    response = gateway.get("holes.test", "/", headers={"accept": "application/json"})
    assert response.status_code == 504
    logs = gateway.logs()
    assert response.json()["reference"] in logs
    assert "GET holes: " in logs
    for port in shared.holes[1:]:
        assert logs.count(f"target 127.0.0.1:{port} failed to connect: out of routing") == 1
