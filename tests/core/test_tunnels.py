from ipaddress import ip_address

import pytest

from core.balance import Upstreams, target_key
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import Target
from core.tunnels import (
    Forward,
    SiteRoute,
    SiteTable,
    decode_sites,
    encode_sites,
    format_sites,
    wanted_forwards,
)

HASH = "a" * 64
POLICY = f"""\
version: 1
sites:
  home: {{secret_sha256: "{HASH}"}}
  office: {{secret_sha256: "{"b" * 64}"}}
resources:
  app:
    host: app.example
    targets:
      - {{site: home, host: 127.0.0.1, port: 3000}}
      - {{site: office, host: 10.0.0.5, port: 3000}}
      - {{host: 192.0.2.1, port: 80}}
  game:
    protocol: udp
    port: 27015
    auth: public
    targets: [{{site: home, host: 127.0.0.1, port: 3000}}]
"""


def test_the_policy_says_what_each_site_carries() -> None:
    model = parse_policy(POLICY, Capabilities()).model
    assert wanted_forwards(model, "home") == {
        ("tcp", "127.0.0.1", 3000),
        ("udp", "127.0.0.1", 3000),
    }
    assert wanted_forwards(model, "office") == {("tcp", "10.0.0.5", 3000)}
    assert wanted_forwards(model, "nowhere") == frozenset()


def test_sites_json_round_trips() -> None:
    forwards = [Forward("tcp", "127.0.0.1", 3000, 3000), Forward("udp", "127.0.0.1", 3000, 3000)]
    table = decode_sites(encode_sites({"home": ("100.89.0.2", True, forwards)}))
    route = table.get("home")
    assert route == SiteRoute(
        "100.89.0.2", True, {("tcp", "127.0.0.1", 3000): 3000, ("udp", "127.0.0.1", 3000): 3000}
    )


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"[]",
        b'{"version": 2, "sites": {}}',
        b'{"version": 1}',
        b'{"version": 1, "sites": {"a": {}}}',
        b'{"version": 1, "sites": {"a": {"address": "x", "online": true, "forwards": [{"protocol": "sctp", "host": "h", "target_port": 1, "port": 1}]}}}',
    ],
)
def test_a_file_that_is_not_sites_json_is_refused(garbage: bytes) -> None:
    with pytest.raises(ValueError, match=r"sites\.json|tcp or udp"):
        decode_sites(garbage)


def test_targets_resolve_to_their_sites_tunnel_while_it_is_online() -> None:
    table = SiteTable(
        {
            "home": SiteRoute(
                "100.89.0.2",
                True,
                {("tcp", "127.0.0.1", 3000): 3000, ("udp", "127.0.0.1", 3000): 20000},
            ),
            "office": SiteRoute("100.89.0.3", False, {("tcp", "10.0.0.5", 3000): 3000}),
        }
    )
    home = Target(site="home", host="127.0.0.1", port=3000)
    assert table.resolve(home) == ("100.89.0.2", 3000)
    assert table.resolve(home, "udp") == ("100.89.0.2", 20000)
    assert (
        table.resolve(Target(site="home", host="127.0.0.1", port=3001)) is None
    )  # not carried yet
    assert table.resolve(Target(site="office", host="10.0.0.5", port=3000)) is None  # offline
    assert table.resolve(Target(site="gone", host="10.0.0.5", port=3000)) is None
    assert table.resolve(Target(host="192.0.2.1", port=80)) == ("192.0.2.1", 80)


def test_targets_on_offline_sites_leave_routing_and_come_back() -> None:
    policy = parse_policy(POLICY, Capabilities())
    app = policy.resources["app"]
    home, office, direct = app.targets
    upstreams = Upstreams()
    online = SiteTable({"home": SiteRoute("100.89.0.2", True, {("tcp", "127.0.0.1", 3000): 3000})})
    upstreams.set_unroutable(online.unroutable(policy))
    client = ip_address("198.51.100.1")
    picked = {upstreams.pick(app, client) for _ in range(6)}
    assert picked == {home, direct}  # office is unknown to the sidecar: not routed
    upstreams.set_unroutable(SiteTable().unroutable(policy))
    assert {upstreams.pick(app, client) for _ in range(4)} == {direct}
    upstreams.set_health(target_key(direct), False)
    assert upstreams.pick(app, client) is None  # nothing left: the gateway answers 503
    upstreams.set_unroutable(frozenset())
    upstreams.set_health(target_key(direct), True)
    assert {upstreams.pick(app, client) for _ in range(6)} == {home, office, direct}


def test_status_table() -> None:
    text = format_sites(
        [
            {
                "site": "home",
                "online": True,
                "address": "100.89.0.2",
                "handshake_age": 75.2,
                "rx_bytes": 3 * 1024 * 1024,
                "tx_bytes": 512,
                "endpoint": "203.0.113.7:40000",
            },
            {
                "site": "office",
                "online": False,
                "address": None,
                "handshake_age": None,
                "rx_bytes": 0,
                "tx_bytes": 0,
                "endpoint": None,
            },
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == [
        "site",
        "online",
        "tunnel",
        "address",
        "last",
        "handshake",
        "in",
        "out",
        "endpoint",
    ]
    assert lines[1].split() == [
        "home",
        "yes",
        "100.89.0.2",
        "1m",
        "ago",
        "3.0",
        "MiB",
        "512",
        "B",
        "203.0.113.7:40000",
    ]
    assert lines[2].split() == [
        "office",
        "NO",
        "not",
        "registered",
        "never",
        "0",
        "B",
        "0",
        "B",
        "-",
    ]
    assert format_sites([]) == "no sites in the policy"
