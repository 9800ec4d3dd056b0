"""The cluster lab itself: a node serves the site's application through its tunnel, and cutting
the site off one node breaks that link only, until it is restored."""

import uuid

from demo import processes
from tests.support.clusterlab import SITE_BACKEND, ClusterLab, site_policy
from tests.support.tunnellab import secret_and_hash
from tests.support.waiting import eventually

BACKEND = SITE_BACKEND


def served(cluster: ClusterLab, node: str) -> bool:
    tag = uuid.uuid4().hex[:10]
    try:
        response = cluster.request(node, "app.test", f"/{tag}")
    except OSError:
        return False
    return response.status_code == 200 and response.json()["target"] == f"/{tag}"


def test_a_node_serves_the_site_it_has_a_tunnel_to(cluster: ClusterLab) -> None:
    secret, secret_hash = secret_and_hash()
    cluster.write_nodes(site_policy(secret_hash))
    cluster.start_node("a")
    cluster.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
    cluster.start_agent("home", secret, via=("a",))
    assert eventually(lambda: served(cluster, "a"), timeout=30), cluster.logs()
    portal = cluster.request("a", "auth.test", "/sign-in")
    assert portal.status_code == 200, portal.text


def test_cutting_the_site_off_one_node_breaks_that_link_only(cluster: ClusterLab) -> None:
    secret, secret_hash = secret_and_hash()
    cluster.write_nodes(site_policy(secret_hash))
    cluster.start_node("a")
    cluster.start_node("b")
    cluster.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
    cluster.start_agent("home", secret, via=("b",))
    assert eventually(lambda: served(cluster, "b"), timeout=30), cluster.logs()
    assert cluster.site_online("b", "home")
    cluster.cut_site_from("b")
    assert eventually(lambda: not cluster.site_online("b", "home"), timeout=30), cluster.logs()
    assert cluster.request("a", "auth.test", "/sign-in").status_code == 200  # a: untouched
    cluster.restore_site_to("b")
    assert eventually(lambda: cluster.site_online("b", "home"), timeout=30), cluster.logs()
    assert eventually(lambda: served(cluster, "b"), timeout=30), cluster.logs()
