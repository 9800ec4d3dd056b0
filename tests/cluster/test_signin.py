"""Sign-in across nodes, end to end in the cluster lab: a session made through node a is good on
node b with no key copied by hand, a sign-out through b is refused on a within a second, and a
share link made on a opens on b until it is revoked on a."""

import html
import re
import time
import uuid

import httpx

from demo import processes
from tests.support.browser import Browser
from tests.support.clusterlab import GATEWAY_PORT, ClusterLab, portal_resource

LOCAL_BACKEND = 8001  # on each node's own loopback: the tests are about sign-in, not tunnels


def policy() -> str:
    return f"""\
version: 1
resources:
{portal_resource()}  app:
    host: app.test
    targets: [{{host: 127.0.0.1, port: {LOCAL_BACKEND}}}]
  shared:
    host: shared.test
    auth: {{share_links: true}}
    targets: [{{host: 127.0.0.1, port: {LOCAL_BACKEND}}}]
"""


def start(cluster: ClusterLab) -> None:
    cluster.write_nodes(policy())
    cluster.add_user("alice")
    for name, node in cluster.nodes.items():
        node.namespace.start(
            processes.backend(LOCAL_BACKEND, f"local-{name}"),
            log=cluster.directory / f"backend-{name}.log",
        )
        cluster.start_node(name, ("portal", "gateway"))


def through(cluster: ClusterLab, browser: Browser, node: str) -> httpx.Response:
    """The signed-in browser's cookie, sent to `node` (call inside `from_user()`)."""
    tag = uuid.uuid4().hex[:10]
    moved = Browser(GATEWAY_PORT, cluster.nodes[node].address, jar=browser.jar)
    return moved.request("GET", f"http://app.test:{GATEWAY_PORT}/{tag}", accept="application/json")


def test_a_session_made_through_a_is_good_on_b(cluster: ClusterLab) -> None:
    start(cluster)
    with cluster.from_user():
        browser = cluster.sign_in("a", "app.test", "alice")
        on_b = through(cluster, browser, "b")
        assert on_b.status_code == 200, (on_b.status_code, on_b.text[:300])
        headers = {name.lower(): value for name, value in on_b.json()["headers"]}
        assert headers["remote-user"] == "alice"


def test_a_sign_out_through_b_is_refused_on_a_within_a_second(cluster: ClusterLab) -> None:
    start(cluster)
    with cluster.from_user():
        browser = cluster.sign_in("a", "app.test", "alice")
        assert through(cluster, browser, "b").status_code == 200
        kept = {host: dict(cookies) for host, cookies in browser.jar.items()}  # the old cookie
        on_b = Browser(GATEWAY_PORT, cluster.nodes["b"].address, jar=browser.jar)
        origin = f"http://app.test:{GATEWAY_PORT}"
        ask, _ = on_b.go(f"{origin}/.warren/logout")
        action = re.search(r'<form method="post" action="([^"]+)"', ask.text)
        assert action is not None, ask.text[:500]
        on_b.go(origin + html.unescape(action.group(1)), "POST", origin=origin)
        answered = time.monotonic()
        assert through(cluster, browser, "b").status_code == 401  # signed out on b itself
        old = Browser(GATEWAY_PORT, cluster.nodes["a"].address, jar=kept)
        while True:
            refused = old.request("GET", f"http://app.test:{GATEWAY_PORT}/").status_code == 302
            if refused or time.monotonic() - answered > 5:
                break
        took = time.monotonic() - answered
    assert refused, old.visited[-3:]
    assert took <= 1.0, f"node a still took the signed-out cookie {took:.3f} s after"


def test_a_share_link_made_on_a_opens_on_b_until_revoked_on_a(cluster: ClusterLab) -> None:
    start(cluster)
    made = cluster.nodes["a"].warren("share", "shared", "--expires", "1h")
    assert made.returncode == 0, made.stderr
    link, link_id = made.stdout.splitlines()[0], made.stdout.splitlines()[1].removeprefix("id ")
    token = link.partition("warren_share=")[2]
    url = f"http://shared.test:{GATEWAY_PORT}/?warren_share={token}"

    def on_b() -> int:
        fresh = Browser(GATEWAY_PORT, cluster.nodes["b"].address)  # no cookie: the link alone
        return fresh.request("GET", url, accept="application/json").status_code

    with cluster.from_user():
        assert on_b() == 200
    revoked = cluster.nodes["a"].warren("share", "revoke", link_id)
    assert revoked.returncode == 0, revoked.stderr
    with cluster.from_user():
        assert on_b() == 403
