"""Which node a request is relayed to, from the records last read (core.cluster.peers)."""

from core.cluster.peers import FRESH_SECONDS, Peers, origin_address
from core.cluster.records import NodeRecord

NOW = 1_000_000.0


def record(name: str, sites: tuple[str, ...], *, url: str | None = None, age: float = 0.0,
           ready: bool = True) -> NodeRecord:  # fmt: skip
    return NodeRecord(
        name=name,
        url=url if url is not None else f"https://{name}.example.com",
        instance=name,
        heartbeat=NOW - age,
        started=NOW - 100,
        sites_online=sites,
        ready=ready,
    )


def test_a_fresh_other_node_with_the_site_and_an_https_url_carries_it() -> None:
    peers = Peers("redis://127.0.0.1:6379/0", "b")
    peers.replace(
        [
            record("a", ("home",), ready=False),
            record("b", ("home",)),  # this node itself: never
            record("c", ("home",), age=FRESH_SECONDS + 1),  # may be gone
            record("d", ("home",), url="http://d.example.com"),  # would carry it in clear
            record("e", ("home",)),
            record("f", ("office",)),
        ]
    )
    carrier = peers.carrying("home", now=NOW)
    assert carrier is not None
    assert carrier.name == "e"  # ready nodes first
    peers.replace([record("a", ("home",), ready=False)])
    again = peers.carrying("home", now=NOW)
    assert again is not None
    assert again.name == "a"
    assert peers.carrying("garage", now=NOW) is None
    assert peers.live() == {"a"}


def test_relay_addresses_are_the_nodes_origins() -> None:
    assert origin_address("https://a.example.com") == ("a.example.com", 443)
    assert origin_address("https://10.0.0.2:8443") == ("10.0.0.2", 8443)
    peers = Peers("redis://127.0.0.1:6379/0", "b")
    peers.replace([record("a", (), url="https://10.0.0.2:8443")])
    assert peers.is_relay_address(("10.0.0.2", 8443))
    assert not peers.is_relay_address(("10.0.0.2", 443))
