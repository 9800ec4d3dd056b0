"""Issue 12, test 6: cut only the site's link to node b, and requests through b still reach the
site, carried via a (addons.relay) — and a relay header from anyone but a live node opens
nothing. Real nodes, site agent and Redis in the cluster lab's network namespaces."""

import json
import time
import uuid
from typing import Any

import httpx

from core.auth.signing import KeyRing
from core.auth.tokens import mint
from core.cluster.relay import Carried, mint_relay
from demo import processes
from tests.support.clusterlab import GATEWAY_PORT, SITE_BACKEND, USER, ClusterLab, site_policy
from tests.support.tunnellab import secret_and_hash
from tests.support.waiting import eventually

BACKEND = SITE_BACKEND


def start(cluster: ClusterLab) -> None:
    """Both nodes, trusting the lab's certificate for each other; the site registered with a."""
    secret, secret_hash = secret_and_hash()
    cluster.write_nodes(site_policy(secret_hash))
    for node in cluster.nodes.values():
        text = node.config.read_text()
        node.config.write_text(
            text.replace(f"url: {node.url}}}", f"url: {node.url}, ca_file: {cluster.cert}}}")
        )
    cluster.start_node("a")
    cluster.start_node("b")
    cluster.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
    cluster.start_agent("home", secret, via=("a",))
    assert eventually(lambda: served(cluster, "a") is not None, timeout=30), cluster.logs()


def send(
    cluster: ClusterLab, node: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A request for app.test from the user's namespace to `node`."""
    with cluster.from_user(), httpx.Client(timeout=5) as client:
        return client.get(
            f"http://{cluster.nodes[node].address}:{GATEWAY_PORT}{path}",
            headers={"host": "app.test", **(headers or {})},
        )


def served(cluster: ClusterLab, node: str) -> dict[str, Any] | None:
    """What the application saw of a request through `node`, or None when it was not served."""
    tag = uuid.uuid4().hex[:10]
    try:
        response = send(cluster, node, f"/{tag}")
    except OSError:
        return None
    if response.status_code != 200:
        return None
    seen: dict[str, Any] = response.json()
    return seen if seen["target"] == f"/{tag}" else None


def received(cluster: ClusterLab, tag: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = cluster.request("a", "app.test", "/.records").json()
    return [record for record in records if tag in record["target"]]


def readiness(cluster: ClusterLab, node: str) -> tuple[int, dict[str, Any]]:
    answer = cluster.request(node, "app.test", "/.warren/readyz")
    body: dict[str, Any] = json.loads(answer.content)
    return answer.status_code, body


def test_requests_through_b_reach_the_site_carried_via_a(cluster: ClusterLab) -> None:
    start(cluster)
    cluster.cut_site_from("b")  # whether or not the agent found b already: that link is down
    assert eventually(lambda: not cluster.site_online("b", "home"), timeout=30), cluster.logs()

    seen = eventually(lambda: served(cluster, "b"), timeout=30)
    assert seen is not None, cluster.logs()
    names = {name.lower().replace("_", "-"): value for name, value in seen["headers"]}
    assert "warren-relay" not in names  # the token stays between the nodes
    assert names["x-forwarded-for"] == USER  # b decided it, for the user who asked b
    assert names["host"] == "app.test"
    assert "site home is offline here: its requests go via node a" in cluster.logs()
    assert "relayed by b" not in cluster.logs()  # a served it, nothing refused
    for _ in range(5):  # not a lucky one: every request through b goes via a
        assert served(cluster, "b") is not None, cluster.logs()

    # DNS steering learns the same: b serves nobody by itself, a does.
    status_b, body_b = readiness(cluster, "b")
    assert status_b == 503
    assert body_b["checks"]["sites"] == "none of 1 online"
    assert readiness(cluster, "a")[0] == 200


def carried(path: str) -> Carried:
    return Carried("GET", "app.test", path, "app", "home", "127.0.0.1", BACKEND)


def test_a_relay_header_from_a_client_opens_nothing(cluster: ClusterLab) -> None:
    start(cluster)
    b_keys = KeyRing(cluster.nodes["b"].state_dir / "keys")  # what only node b holds
    tag = uuid.uuid4().hex[:10]
    path = f"/{tag}"
    claims = {"jti": "j1", **carried(path).as_claims()}
    expired = mint(
        b_keys, use="relay", issuer="b", audience="a", subject="home", lifetime=10,
        claims=claims, now=time.time() - 60,
    )  # fmt: skip
    other = KeyRing(cluster.directory / "stranger")
    other.ensure()
    refused = {
        "garbage": "not-a-token",
        "forged": mint_relay(other, sender="b", receiver="a", carried=carried(path)),
        "misaddressed": mint_relay(b_keys, sender="b", receiver="b", carried=carried(path)),
        "expired": expired,
        "another path": mint_relay(b_keys, sender="b", receiver="a", carried=carried("/other")),
    }
    for why, token in refused.items():
        for name in ("Warren-Relay", "warren_relay"):
            answer = send(cluster, "a", path, {name: token})
            assert answer.status_code == 403, (why, name, answer.text)
    assert received(cluster, tag) == []  # the application got none of them

    # Only a token node b made for this very request opens it, once.
    valid = mint_relay(b_keys, sender="b", receiver="a", carried=carried(path))
    assert send(cluster, "a", path, {"Warren-Relay": valid}).status_code == 200
    assert send(cluster, "a", path, {"Warren-Relay": valid}).status_code == 403
    assert len(received(cluster, tag)) == 1
    # A target this node's policy does not have (a push still on its way): not guessed at.
    elsewhere = carried(path + "p")._replace(target_port=9999)
    stray = mint_relay(b_keys, sender="b", receiver="a", carried=elsewhere)
    assert send(cluster, "a", path + "p", {"Warren-Relay": stray}).status_code == 502

    # A relayed request whose site is offline on the receiving node too is not relayed again.
    cluster.cut_site_from("a")
    assert eventually(lambda: not cluster.site_online("a", "home"), timeout=30), cluster.logs()
    late = mint_relay(b_keys, sender="b", receiver="a", carried=carried(path + "x"))
    answer = send(cluster, "a", path + "x", {"Warren-Relay": late})
    assert answer.status_code == 502, answer.text
