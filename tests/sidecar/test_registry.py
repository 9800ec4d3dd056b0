import hashlib
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import PolicyFile
from core.tunnels import PROBE_PORT, Forward, ForwardKey
from sidecar import wgkeys
from sidecar.registry import (
    FIRST_SPARE_PORT,
    RegistrationRefused,
    Registry,
    assign_ports,
    secret_matches,
)

SUBNET = IPv4Network("100.89.0.0/29")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def model(sites: dict[str, str], targets: str = "") -> PolicyFile:
    lines = ["version: 1", "sites:"]
    lines += [f'  {name}: {{secret_sha256: "{digest(secret)}"}}' for name, secret in sites.items()]
    if targets:
        lines += ["resources:", targets]
    return parse_policy("\n".join(lines) + "\n", Capabilities()).model


def key() -> str:
    return wgkeys.public_key(wgkeys.generate_private_key())


def test_secrets_are_checked_against_the_hash() -> None:
    policy = model({"home": "s3cret"})
    assert secret_matches(policy, "home", "s3cret")
    assert not secret_matches(policy, "home", "s3cret ")
    assert not secret_matches(policy, "home", "")
    assert not secret_matches(policy, "away", "s3cret")


def test_tunnel_ports_are_the_targets_own_unless_taken_and_never_move() -> None:
    wanted: set[ForwardKey] = {
        ("tcp", "127.0.0.1", 80),
        ("tcp", "10.0.0.2", 80),
        ("udp", "127.0.0.1", 80),
    }
    first = assign_ports(wanted, ())
    assert first == (
        Forward("tcp", "10.0.0.2", 80, 80),
        Forward("tcp", "127.0.0.1", 80, FIRST_SPARE_PORT),
        Forward("udp", "127.0.0.1", 80, 80),
    )
    # Adding a forward and removing another leaves the rest where they were.
    again = assign_ports((wanted - {("tcp", "10.0.0.2", 80)}) | {("tcp", "10.0.0.3", 80)}, first)
    assert Forward("tcp", "127.0.0.1", 80, FIRST_SPARE_PORT) in again
    assert Forward("tcp", "10.0.0.3", 80, 80) in again
    # The probe port on the tunnel address is Warren's.
    (probe,) = assign_ports({("tcp", "127.0.0.1", PROBE_PORT)}, ())
    assert probe.port == FIRST_SPARE_PORT


def test_registration_allocates_stable_addresses_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    policy = model(
        {"home": "a", "office": "b"},
        "  app:\n    host: app.example\n    targets: [{site: home, host: 127.0.0.1, port: 3000}]",
    )
    registry = Registry(path, SUBNET)
    home_key, office_key = key(), key()
    home, replaced = registry.register(policy, "home", home_key)
    assert (home.address, replaced) == (IPv4Address("100.89.0.2"), None)
    assert home.forwards == (Forward("tcp", "127.0.0.1", 3000, 3000),)
    office, _ = registry.register(policy, "office", office_key)
    assert office.address == IPv4Address("100.89.0.3")
    registry.save()
    assert path.stat().st_mode & 0o777 == 0o600
    restored = Registry(path, SUBNET)
    assert restored.sites == registry.sites
    # A new key for the same site keeps its address and names the key it replaces.
    new_key = key()
    again, replaced = restored.register(policy, "home", new_key)
    assert (again.address, again.public_key, replaced) == (home.address, new_key, home_key)


def test_a_key_of_another_site_is_refused(tmp_path: Path) -> None:
    policy = model({"home": "a", "office": "b"})
    registry = Registry(tmp_path / "state.json", SUBNET)
    shared = key()
    registry.register(policy, "home", shared)
    with pytest.raises(RegistrationRefused) as refused:
        registry.register(policy, "office", shared)
    assert refused.value.status == 409


def test_the_subnet_runs_out_politely(tmp_path: Path) -> None:
    names = {f"s{i}": str(i) for i in range(6)}
    policy = model(names)
    registry = Registry(tmp_path / "state.json", SUBNET)  # .1 is the node: .2 to .6 for sites
    for name in list(names)[:5]:
        registry.register(policy, name, key())
    with pytest.raises(RegistrationRefused, match="no tunnel address left"):
        registry.register(policy, "s5", key())


def test_removed_sites_and_changed_secrets_lose_their_peer(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "state.json", SUBNET)
    before = model({"home": "a", "office": "b", "lab": "c"})
    keys_of = {name: key() for name in ("home", "office", "lab")}
    for name, public in keys_of.items():
        registry.register(before, name, public)
    after = model({"home": "a", "office": "rotated"})
    assert sorted(registry.reconcile(after)) == sorted([keys_of["office"], keys_of["lab"]])
    assert list(registry.sites) == ["home"]


def test_state_outside_a_changed_subnet_is_dropped(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "state.json", SUBNET)
    registry.register(model({"home": "a"}), "home", key())
    registry.save()
    assert Registry(tmp_path / "state.json", IPv4Network("100.90.0.0/24")).sites == {}


def test_endpoints_are_remembered(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "state.json", SUBNET)
    public = key()
    registry.register(model({"home": "a"}), "home", public)
    assert registry.note_endpoints({public: "203.0.113.5:4000"})
    assert not registry.note_endpoints({public: "203.0.113.5:4000"})
    registry.save()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["sites"]["home"]["endpoint"] == "203.0.113.5:4000"
