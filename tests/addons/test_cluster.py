"""Two whole nodes (gateway + portal each) on one real redis-server, each on its own loopback
address with the same ports, as round-robin DNS puts one name on two machines: what node A's
portal signs verifies on node B by A's published key, and stops verifying once A is removed.

Each node keeps its own policy.yaml: the portal resource reaches the node's own portal.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from demo import processes
from tests.support import loopback_node
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.loopback_node import PASSWORD, LoopbackNode
from tests.support.redis import RedisServer, require_redis_server
from tests.support.waiting import eventually


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def _node(
    directory: Path, backend: Backend, redis: RedisServer, name: str, address: str, ports: Any
) -> LoopbackNode:
    shared = (
        "  shared:\n    host: shared.localhost\n    auth: {share_links: true}\n"
        f"    targets: [{{host: 127.0.0.1, port: {backend.port}}}]\n"
    )
    node = loopback_node.prepare(
        directory / name,
        backend.port,
        shared,
        settings=f"storage: {redis.url}\nnode: {{name: {name}, url: 'http://{address}:PORT'}}\n",
        address=address,
        ports=ports,
    )
    config = node.config.read_text().replace(":PORT", f":{node.port}")
    node.config.write_text(config)
    policy_file = node.directory / "policy.yaml"
    theirs = f"host: 127.0.0.1, port: {node.portal_port}"
    policy_file.write_text(
        policy_file.read_text().replace(theirs, f"host: {address}, port: {node.portal_port}")
    )
    node.add_user("carol")
    return node


@pytest.fixture
def nodes(
    tmp_path: Path, backend: Backend, redis: RedisServer, request: pytest.FixtureRequest
) -> Iterator[tuple[LoopbackNode, LoopbackNode]]:
    a = _node(tmp_path, backend, redis, "a", "127.0.0.1", None)
    b = _node(tmp_path, backend, redis, "b", "127.0.0.2", (a.port, a.portal_port))
    try:
        for node in (a, b):
            loopback_node.start(node)
        yield a, b
    except BaseException:
        for node in (a, b):
            print(f"--- {node.directory} ---\n{node.logs()[-5000:]}")
        raise
    finally:
        for node in (a, b):
            node.stop()


def sign_in(node: LoopbackNode) -> Browser:
    browser = node.browser()
    page, _ = browser.go(node.url("app.localhost", "/"))
    landed, at = browser.go(
        f"{node.portal}/sign-in",
        "POST",
        data={
            "csrf": form_value(page.text, "csrf"),
            "rd": form_value(page.text, "rd"),
            "username": "carol",
            "password": PASSWORD,
        },
        origin=node.portal,
    )
    assert landed.status_code == 200, browser.visited
    assert at.startswith(node.url("app.localhost")), browser.visited
    return browser


def session_kid(browser: Browser) -> str:
    [token] = [v for v in browser.cookies("app.localhost").values() if v.count(".") == 2]
    return str(jwt.get_unverified_header(token)["kid"])


def signed_with(node: LoopbackNode, kid: str) -> Browser:
    browser = sign_in(node)
    assert session_kid(browser) == kid, "signed with the key before"
    return browser


def served_on(browser: Browser, node: LoopbackNode) -> bool:
    through = Browser(node.port, node.address, jar=browser.jar)
    return through.request("GET", node.url("app.localhost", "/")).status_code == 200


def jwks_kids(node: LoopbackNode) -> set[str]:
    answer = httpx.get(
        f"http://{node.address}:{node.port}/.well-known/jwks.json",
        headers={"host": f"auth.localhost:{node.port}"},
    )
    assert answer.status_code == 200, answer.text
    return {key["kid"] for key in answer.json()["keys"]}


def own_kids(node: LoopbackNode) -> set[str]:
    return {path.stem for path in (node.directory / "state" / "keys").glob("*.pem")}


def listed(node: LoopbackNode) -> dict[str, Any]:
    return {entry["name"]: entry for entry in json.loads(node.warren("nodes", "--json"))["nodes"]}


def both_listed(node: LoopbackNode) -> dict[str, Any]:
    found = listed(node)
    assert set(found) == {"a", "b"}, found
    return found


def test_a_session_signed_on_one_node_is_good_on_the_other_until_its_node_is_removed(
    nodes: tuple[LoopbackNode, LoopbackNode],
) -> None:
    a, b = nodes
    both = eventually(lambda: both_listed(a), timeout=20)
    assert both["b"]["url"] == f"http://127.0.0.2:{b.port}"
    assert both["a"]["policy"]["digest"]

    browser = sign_in(a)
    assert session_kid(browser) in own_kids(a)
    assert served_on(browser, b)
    # Another resource through B: B's portal takes A's portal sign-in, no password asked again.
    through_b = Browser(b.port, b.address, jar=browser.jar)
    wiki, at = through_b.go(b.url("wiki.localhost", "/"))
    assert wiki.status_code == 200, through_b.visited
    assert at.startswith(b.url("wiki.localhost")), through_b.visited
    assert own_kids(a) <= jwks_kids(b)  # what applications fetch to check assertions
    assert own_kids(b) <= jwks_kids(a)

    link = a.warren("share", "shared", "--expires", "1h").splitlines()[0]
    opened = httpx.get(
        link.replace("http://shared.localhost", f"http://{b.address}"),
        headers={"host": f"shared.localhost:{b.port}"},
    )
    assert opened.status_code == 200, "a share link made on A opens on B"

    rotated = a.warren("keys", "rotate")
    new_kid = rotated.split("signing with ")[1].split()[0]
    # A's portal takes the new key within a second (it re-reads its key directory): B knows it
    # before that, published by `warren keys rotate` itself.
    fresh = eventually(lambda: signed_with(a, new_kid))
    assert served_on(fresh, b)

    removed = b.warren("nodes", "remove", "a")
    assert "removed a" in removed
    eventually(lambda: not served_on(fresh, b), timeout=10)
    assert not served_on(browser, b)
    assert not own_kids(a) & jwks_kids(b)
    assert set(listed(b)) == {"b"}
    eventually(lambda: "was removed from the cluster" in a.logs(), timeout=10)
    assert served_on(fresh, a)  # A itself serves on, as a single node would


def test_a_single_node_lists_itself_and_says_storage_is_not_shared(
    tmp_path: Path, backend: Backend
) -> None:
    alone = loopback_node.prepare(tmp_path / "alone", backend.port, settings="node: {name: solo}\n")
    done = subprocess.run(
        [*processes.warren("nodes", "--config", str(alone.config))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "solo" in done.stdout
    assert "not shared" in done.stdout
