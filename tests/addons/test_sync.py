"""Pushed policy and users (addons.sync over core.cluster.sync) end to end: real gateway and
portal processes sharing one real redis-server on loopback, `warren policy push` and
`warren user ...` run as an admin runs them.

Two gateways on 127.0.0.1 with ports of their own serve the policy tests (no sign-in there, so
the pushed policy needs no portal). The users test runs two whole nodes, each on its own loopback
address with the same ports, each with a local policy whose portal resource is its own portal:
only users.yaml is pushed there.
"""

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import control
from core.cluster import registry
from core.cluster.documents import Kind, current
from core.settings import load_settings
from core.storage import redis_client
from demo import processes
from tests.support import gateway as gateways
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.browser import form_value
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.geoip import COUNTRY, geoip_file
from tests.support.loopback_node import PASSWORD, LoopbackNode
from tests.support.redis import RedisServer, require_redis_server
from tests.support.waiting import eventually

POLICY = """\
version: 1
resources:
  app:
    host: app.localhost
    auth: public
    targets: [{{host: 127.0.0.1, port: {port}}}]
    rules: [{{action: deny, path: "/{denied}/*"}}{more}]
"""


def policy(backend: Backend, denied: str, more: str = "") -> str:
    return POLICY.format(port=backend.port, denied=denied, more=more)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def node_settings(redis: RedisServer, name: str, extra: str = "") -> str:
    return f"storage: {redis.url}\nnode: {{name: {name}}}\n{extra}"


def two_gateways(
    start_gateway: GatewayFactory, backend: Backend, redis: RedisServer, a_extra: str = ""
) -> tuple[Gateway, Gateway]:
    local = policy(backend, "local")
    a = start_gateway(local, settings=node_settings(redis, "a", a_extra), name="a")
    b = start_gateway(local, settings=node_settings(redis, "b"), name="b")
    return a, b


def warren(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*processes.warren(*args), "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def push(gateway: Gateway, file: Path) -> subprocess.CompletedProcess[str]:
    return warren(gateway.config, "policy", "push", str(file), "--wait", "0")


def denies(gateway: Gateway, segment: str) -> bool:
    return gateway.get("app.localhost", f"/{segment}/x").status_code == 403


def live_nodes(url: str) -> list[str]:
    async def read() -> list[str]:
        client = redis_client(url)
        try:
            return [node.name for node in await registry.live_nodes(client)]
        finally:
            await client.aclose()

    return asyncio.run(read())


def pushed_at(url: str) -> float:
    async def read() -> float:
        client = redis_client(url)
        try:
            document = await current(client, Kind.POLICY)
            assert document is not None
            return document.pushed_at
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_a_pushed_policy_is_served_by_every_node_within_a_second(
    start_gateway: GatewayFactory, backend: Backend, redis: RedisServer, tmp_path: Path
) -> None:
    a, b = two_gateways(start_gateway, backend, redis)
    assert not denies(a, "first")
    first = tmp_path / "first.yaml"
    first.write_text(policy(backend, "first"))
    done = push(a, first)
    assert done.returncode == 0, done.stderr
    assert "pushed policy version 1" in done.stdout
    # Generous: the nodes' syncs may still be connecting to storage after the gateways listen.
    eventually(lambda: denies(a, "first") and denies(b, "first"), timeout=20)

    second = tmp_path / "second.yaml"
    second.write_text(policy(backend, "second"))
    pushing = subprocess.Popen(  # watched from before it stores, not from when it exits
        [*processes.warren("policy", "push", str(second), "--wait", "0", "-c", str(a.config))],
        stdout=subprocess.DEVNULL,
    )
    served: dict[str, float] = {}
    deadline = time.monotonic() + 20
    while len(served) < 2 and time.monotonic() < deadline:
        for name, gateway in (("a", a), ("b", b)):
            if name not in served and denies(gateway, "second"):
                served[name] = time.time()
        time.sleep(0.01)
    assert pushing.wait(10) == 0
    stored = pushed_at(redis.url)
    assert set(served) == {"a", "b"}, "a node never served the pushed policy"
    seconds = max(served.values()) - stored
    assert seconds <= 1.0, f"the last node served the push {seconds:.3f} s after it was stored"
    assert not denies(b, "first")
    assert b.policy.read_text() == second.read_text()  # the node's own file: its last good copy


def test_a_file_that_does_not_validate_is_refused_and_nothing_is_stored(
    start_gateway: GatewayFactory, backend: Backend, redis: RedisServer, tmp_path: Path
) -> None:
    a, b = two_gateways(start_gateway, backend, redis)
    broken = tmp_path / "broken.yaml"
    broken.write_text(policy(backend, "broken").replace("auth: public", "auth: everyone"))
    done = push(a, broken)
    assert done.returncode == 1
    assert f"{broken}:5" in done.stderr  # the located error, as `warren check` says it
    assert "resources.app.auth" in done.stderr
    assert "pushed" not in done.stdout
    assert redis.command("EXISTS", "warren:cluster:document:policy") == b":0\r\n"
    assert denies(a, "local")
    assert denies(b, "local")
    assert "auth: everyone" not in b.policy.read_text()


def test_a_node_that_cannot_load_a_push_keeps_its_copy_and_says_why(
    start_gateway: GatewayFactory, backend: Backend, redis: RedisServer, tmp_path: Path
) -> None:
    with_country = f"geoip: {{country_db: {geoip_file(COUNTRY)}}}\n"
    a, b = two_gateways(start_gateway, backend, redis, a_extra=with_country)
    geo = tmp_path / "geo.yaml"
    geo.write_text(policy(backend, "geo", more=", {action: deny, country: [KP]}"))
    local_b = b.policy.read_text()
    eventually(lambda: live_nodes(redis.url) == ["a", "b"], timeout=20)
    done = warren(a.config, "policy", "push", str(geo))  # valid on the node it is pushed from
    assert done.returncode == 1, done.stdout + done.stderr  # one node did not take it
    assert "pushed policy version 1" in done.stdout
    assert "a: took policy" in done.stdout
    assert "b: refused it, still serving" in done.stderr
    assert "country" in done.stderr
    assert denies(a, "geo")
    refusal = eventually(lambda: _refusal(b), timeout=20)
    assert "country" in refusal
    assert denies(b, "local")  # still serving its last good copy
    assert not denies(b, "geo")
    assert b.policy.read_text() == local_b
    assert "pushed policy version 1" in b.logs()
    assert "refused" in b.logs()

    # Restarted with the refused push still in storage: it starts, serves its copy, says why.
    restarted = restart(b)
    try:
        assert "country" in eventually(lambda: _refusal(restarted), timeout=20)
        assert denies(restarted, "local")
    finally:
        processes.stop(restarted.process)


def restart(gateway: Gateway) -> Gateway:
    gateways.stop(gateway)
    process = processes.start(
        processes.warren("gateway", "--config", str(gateway.config)),
        log=gateway.log,
        cwd=gateway.directory,
    )
    restarted = Gateway(gateway.port, gateway.directory, process, gateway.log)
    gateways.wait(restarted)
    return restarted


def _refusal(gateway: Gateway) -> str:
    """What `warren status` (and the heartbeat) says of the policy the node last refused."""
    try:
        status = control.call(load_settings(gateway.config).control_path, "status")
    except OSError:  # not answering yet
        return ""
    return str(status.get("last_error") or "")


def test_a_node_restarted_while_storage_is_down_serves_its_last_good_copy(
    start_gateway: GatewayFactory, backend: Backend, redis: RedisServer, tmp_path: Path
) -> None:
    a, b = two_gateways(start_gateway, backend, redis)
    pushed = tmp_path / "pushed.yaml"
    pushed.write_text(policy(backend, "pushed"))
    assert push(a, pushed).returncode == 0
    eventually(lambda: denies(b, "pushed"), timeout=20)

    redis.stop()
    restarted = restart(b)
    try:
        assert denies(restarted, "pushed")
        assert not denies(restarted, "local")
    finally:
        processes.stop(restarted.process)


# --- users: two whole nodes, one address each ---


def _node(
    directory: Path,
    backend: Backend,
    redis: RedisServer,
    name: str,
    address: str = "127.0.0.1",
    ports: tuple[int, int] | None = None,
) -> LoopbackNode:
    settings = node_settings(redis, name)
    node = loopback_node.prepare(
        directory / name, backend.port, settings=settings, address=address, ports=ports
    )
    # The portal resource reaches this node's own portal, on the node's own address.
    policy_file = node.directory / "policy.yaml"
    theirs = f"host: 127.0.0.1, port: {node.portal_port}"
    own = f"host: {node.address}, port: {node.portal_port}"
    policy_file.write_text(policy_file.read_text().replace(theirs, own))
    return node


def sign_in(node: LoopbackNode, password: str) -> bool:
    """Through the node's gateway and portal as a browser does it; True when it lands on app."""
    browser = node.browser()
    page, _ = browser.go(node.url("app.localhost", "/"))
    landed, at = browser.go(
        f"{node.portal}/sign-in",
        "POST",
        data={
            "csrf": form_value(page.text, "csrf"),
            "rd": form_value(page.text, "rd"),
            "username": "carol",
            "password": password,
        },
        origin=node.portal,
    )
    return at.startswith(node.url("app.localhost")) and landed.status_code == 200


def test_a_password_changed_or_a_user_deleted_on_one_node_is_so_on_the_other(
    tmp_path: Path, backend: Backend, redis: RedisServer
) -> None:
    a = _node(tmp_path, backend, redis, "a")
    b = _node(tmp_path, backend, redis, "b", address="127.0.0.2", ports=(a.port, a.portal_port))
    try:
        for node in (a, b):
            loopback_node.start(node)
        added = warren(a.config, "user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        assert "pushed users version 1" in added.stderr
        eventually(lambda: "carol" in (b.directory / "users.yaml").read_text(), timeout=20)
        assert sign_in(b, PASSWORD)

        new = "a new password 42"
        changed = warren(a.config, "user", "passwd", "carol", "--password-stdin", stdin=new + "\n")
        assert changed.returncode == 0, changed.stderr
        eventually(lambda: sign_in(b, new), timeout=5)
        assert not sign_in(b, PASSWORD)

        deleted = warren(a.config, "user", "del", "carol")
        assert deleted.returncode == 0, deleted.stderr
        eventually(lambda: not sign_in(b, new), timeout=5)
    except BaseException:
        print(a.logs()[-4000:], b.logs()[-4000:])
        raise
    finally:
        a.stop()
        b.stop()


def test_a_user_change_while_storage_is_down_stands_here_and_says_others_did_not_get_it(
    tmp_path: Path, backend: Backend, redis: RedisServer
) -> None:
    a = _node(tmp_path, backend, redis, "a")
    redis.stop()
    done = warren(a.config, "user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 1
    assert "carol" in (a.directory / "users.yaml").read_text()  # the local change stands
    assert "Other nodes did not get it" in done.stderr
    assert f"warren users push {a.directory / 'users.yaml'}" in done.stderr


def test_users_push_refuses_a_file_with_a_plain_password(
    tmp_path: Path, backend: Backend, redis: RedisServer
) -> None:
    a = _node(tmp_path, backend, redis, "a")
    plain = tmp_path / "users.yaml"
    plain.write_text("version: 1\nusers:\n  carol: {password: hunter2hunter2}\n")
    done = warren(a.config, "users", "push", str(plain))
    assert done.returncode == 1
    assert "never a plain password" in done.stderr
    assert redis.command("EXISTS", "warren:cluster:document:users") == b":0\r\n"


def test_a_single_node_has_nothing_to_push_to(tmp_path: Path, backend: Backend) -> None:
    alone = loopback_node.prepare(tmp_path / "alone", backend.port)
    done = warren(alone.config, "policy", "push", str(alone.directory / "policy.yaml"))
    assert done.returncode == 1
    assert "storage is memory://" in done.stderr
    added = warren(alone.config, "user", "add", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "pushed" not in added.stderr
