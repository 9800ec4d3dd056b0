"""Issue 12, test 5: `warren policy push` with a change is live on both nodes within 1 s; a push
of an invalid file is refused and both keep serving the old one; a node with a bad local edit
keeps its last good copy and `warren nodes` shows it. Two whole nodes (gateway, portal, sidecar)
in their namespaces, on the store's Redis.

Whether a node serves a policy is seen from a rule: `deny` on a path answers 403 before any
target is chosen, so no site needs to be online for it.
"""

import asyncio
import json
import time
from typing import Any

from core.cluster.documents import Kind, PushedDocument, current
from core.storage import redis_client
from demo import processes
from tests.support.clusterlab import ClusterLab, site_policy
from tests.support.tunnellab import secret_and_hash
from tests.support.waiting import eventually


def policy(secret_hash: str, denied: str) -> str:
    return site_policy(secret_hash, f'[{{action: deny, path: "/{denied}/*"}}]')


def denies(cluster: ClusterLab, node: str, segment: str) -> bool:
    try:
        return cluster.request(node, "app.test", f"/{segment}/x").status_code == 403
    except OSError:
        return False


def nodes_report(cluster: ClusterLab) -> dict[str, dict[str, Any]]:
    done = cluster.nodes["a"].warren("nodes", "--json")
    assert done.returncode == 0, done.stderr
    return {entry["name"]: entry for entry in json.loads(done.stdout)["nodes"]}


def pushed(cluster: ClusterLab) -> PushedDocument | None:
    async def read() -> PushedDocument | None:
        redis = redis_client(cluster.storage)
        try:
            return await current(redis, Kind.POLICY)
        finally:
            await redis.aclose()

    with cluster.nodes["a"].namespace.entered():
        return asyncio.run(read())


def test_a_push_is_live_on_both_nodes_within_a_second_and_a_bad_one_changes_nothing(
    cluster: ClusterLab,
) -> None:
    _, secret_hash = secret_and_hash()
    cluster.write_nodes(policy(secret_hash, "old"))
    cluster.start_node("a")
    cluster.start_node("b")
    eventually(lambda: set(nodes_report(cluster)) == {"a", "b"}, timeout=30)
    assert denies(cluster, "a", "old")
    assert denies(cluster, "b", "old")

    change = cluster.directory / "change.yaml"
    change.write_text(policy(secret_hash, "new"))
    node_a = cluster.nodes["a"]
    pushing = node_a.namespace.start(  # watched from before it stores, not from when it exits
        processes.warren("policy", "push", str(change), "--config", str(node_a.config)),
        log=cluster.directory / "push.log",
    )
    served: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while len(served) < 2 and time.monotonic() < deadline:
        for name in ("a", "b"):
            if name not in served and denies(cluster, name, "new"):
                served[name] = time.time()
        time.sleep(0.01)
    assert pushing.wait(30) == 0, (cluster.directory / "push.log").read_text()
    document = pushed(cluster)
    assert document is not None
    assert set(served) == {"a", "b"}, cluster.logs()
    seconds = max(served.values()) - document.pushed_at
    print(f"pushed policy served by both nodes {seconds:.3f} s after it was stored")
    assert seconds <= 1.0, f"the last node served the push {seconds:.3f} s after it was stored"
    said = (cluster.directory / "push.log").read_text()
    assert "a: took policy" in said
    assert "b: took policy" in said
    assert not denies(cluster, "b", "old")

    # A file that does not validate: refused by the command, nothing stored, nothing changes.
    broken = cluster.directory / "broken.yaml"
    broken.write_text(
        policy(secret_hash, "broken").replace(
            "auth: public\n    targets: [{site", "auth: anyone\n    targets: [{site"
        )
    )
    refused = node_a.warren("policy", "push", str(broken))
    assert refused.returncode == 1
    assert "resources.app.auth" in refused.stderr
    after = pushed(cluster)
    assert after is not None
    assert after.version == document.version
    assert denies(cluster, "a", "new")
    assert denies(cluster, "b", "new")

    # A bad edit by hand on b: b keeps its last good copy, and `warren nodes` says so.
    node_b = cluster.nodes["b"]
    node_b.policy_file.write_text(node_b.policy_file.read_text() + "  oops: [\n")
    eventually(lambda: nodes_report(cluster)["b"]["policy"]["error"], timeout=30)
    report = nodes_report(cluster)
    assert report["b"]["policy"]["digest"] == document.digest
    assert report["a"]["policy"]["error"] is None
    assert denies(cluster, "b", "new")
    listed = node_a.warren("nodes")
    assert "refused:" in listed.stdout, listed.stdout
