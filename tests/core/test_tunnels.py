from ipaddress import ip_address

import pytest

from core.balance import Upstreams, target_key
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import Target
from core.tunnels import (
    Forward,
    ForwardKey,
    SiteRoute,
    SiteState,
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


def test_a_site_carries_the_targets_of_routes_too() -> None:
    text = POLICY.replace(
        "      - {host: 192.0.2.1, port: 80}\n",
        "      - {host: 192.0.2.1, port: 80}\n"
        "    routes: [{path: /api/*, targets: [{site: office, host: 10.0.0.6, port: 81}]}]\n",
    )
    model = parse_policy(text, Capabilities()).model
    assert wanted_forwards(model, "office") == {("tcp", "10.0.0.5", 3000), ("tcp", "10.0.0.6", 81)}


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
        b'{"version": 1, "sites": {"a": {"address": "x", "online": true, "forwards": [], "secret_sha256": "AB"}}}',
        b'{"version": 1, "sites": {"a": {"address": "x", "online": true, "forwards": [], "secret_sha256": 7}}}',
    ],
)
def test_a_file_that_is_not_sites_json_is_refused(garbage: bytes) -> None:
    with pytest.raises(ValueError, match=r"sites\.json|tcp or udp"):
        decode_sites(garbage)


def test_sites_json_carries_the_hash_each_site_registered_under() -> None:
    forwards = [Forward("tcp", "127.0.0.1", 3000, 3000)]
    data = encode_sites({"home": SiteState("100.89.0.2", True, forwards, HASH)})
    route = decode_sites(data).get("home")
    assert route is not None
    assert route.secret_sha256 == HASH
    # A sidecar older than the field wrote none: the same version, read as "not known".
    old = decode_sites(encode_sites({"home": ("100.89.0.2", True, forwards)})).get("home")
    assert old is not None
    assert old.secret_sha256 is None
    assert b"secret_sha256" not in encode_sites({"home": ("100.89.0.2", True, forwards)})


def test_the_gateways_own_policy_takes_a_site_out_before_the_sidecar_does() -> None:
    policy = parse_policy(POLICY, Capabilities())
    ports: dict[ForwardKey, int] = {("tcp", "127.0.0.1", 3000): 3000}
    home = Target(site="home", host="127.0.0.1", port=3000)
    reported = SiteTable(
        {
            "home": SiteRoute("100.89.0.2", True, ports, HASH),
            "office": SiteRoute("100.89.0.3", True, {("tcp", "10.0.0.5", 3000): 3000}, "b" * 64),
        }
    )
    assert reported.for_policy(policy.model).resolve(home) == ("100.89.0.2", 3000)
    assert reported.unroutable(policy) == frozenset()
    # The secret changed in the policy; the sidecar still says online under the old one.
    changed = parse_policy(POLICY.replace(HASH, "c" * 64), Capabilities())
    table = reported.for_policy(changed.model)
    assert table.resolve(home) is None
    assert table.routable_sites() == {"office"}
    assert reported.unroutable(changed) == {target_key(home)}
    # A site the policy no longer has is offline too, whatever sites.json says.
    without = parse_policy(
        f'version: 1\nsites:\n  office: {{secret_sha256: "{"b" * 64}"}}\n', Capabilities()
    )
    assert reported.for_policy(without.model).routable_sites() == {"office"}
    # No hash (an older sidecar): its word stands, as before.
    legacy = SiteTable({"home": SiteRoute("100.89.0.2", True, ports)})
    assert legacy.for_policy(changed.model).resolve(home) == ("100.89.0.2", 3000)
    # Offline stays offline.
    down = SiteTable({"home": SiteRoute("100.89.0.2", False, ports, HASH)})
    assert down.for_policy(policy.model).resolve(home) is None


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
                "transport": "tcp",
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
        "transport",
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
        "tcp/443",
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
        "-",
    ]
    assert format_sites([]) == "no sites in the policy"
