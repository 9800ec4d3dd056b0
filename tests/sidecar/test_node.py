"""The node sidecar itself, on a real wireguard-go interface in a network namespace: a site that
leaves the policy leaves sites.json first and loses its peer only once gateways have seen that,
whatever reloads and registrations come in between; its nftables isolation table."""

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.policy.check import node_capabilities
from core.policy.store import PolicyStore
from core.settings import load_settings
from core.tunnels import sites_file
from sidecar import wgkeys
from sidecar.node import NodeSidecar
from tests.support.netlab import Lab, Namespace
from tests.support.tunnellab import secret_and_hash

POLL = 1.0  # reload_poll: peers go 2 x 1 s after they leave sites.json


class NamespacedSidecar:
    def __init__(self, lab: Lab, directory: Path, isolate: bool = True, extra: str = "") -> None:
        self.namespace = lab.namespace("n")
        self.directory = directory
        self.home, self.home_hash = secret_and_hash()
        self.office, self.office_hash = secret_and_hash()
        self.write_policy(self.home_hash, self.office_hash)
        (directory / "warren.yaml").write_text(
            f"state_dir: state\nreload_poll: {POLL}s\n"
            f"wireguard: {{interface: {lab.interface('n')}, subnet: 100.89.0.0/24, "
            f"isolate: {str(isolate).lower()}}}\n{extra}"
        )
        settings = load_settings(directory / "warren.yaml")
        self.store = PolicyStore(settings.policy_file, node_capabilities(settings))
        self.sidecar = NodeSidecar(settings, self.store)
        self.store.subscribe(self.sidecar.on_policy)
        self.keys = {name: wgkeys.public_key(wgkeys.generate_private_key()) for name in ("h", "o")}

    def write_policy(self, home_hash: str, office_hash: str | None = None) -> None:
        office = f'  office: {{secret_sha256: "{office_hash}"}}\n' if office_hash else ""
        (self.directory / "policy.yaml").write_text(
            f'version: 1\nsites:\n  home: {{secret_sha256: "{home_hash}"}}\n{office}'
        )

    async def reload(self, home_hash: str, office_hash: str | None = None) -> None:
        self.write_policy(home_hash, office_hash)
        assert (await self.store.reload_async()).ok

    def peers(self) -> set[str]:
        return {peer.public_key for peer in self.sidecar.device.peers()}

    def published(self) -> dict[str, dict[str, object]]:
        sites: dict[str, dict[str, object]] = json.loads(
            sites_file(self.sidecar.settings.state_dir).read_bytes()
        )["sites"]
        return sites

    def register_both(self) -> None:
        self.sidecar.register("home", self.home, self.keys["h"], "test")
        self.sidecar.register("office", self.office, self.keys["o"], "test")


def run_in(namespace: Namespace, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario()

    with namespace.entered():
        asyncio.run(main())


def test_a_site_whose_secret_changes_leaves_sites_json_first_and_its_peer_later(
    lab: Lab, tmp_path: Path
) -> None:
    node = NamespacedSidecar(lab, tmp_path)

    async def scenario() -> None:
        node.sidecar.start()
        try:
            node.register_both()
            assert node.peers() == set(node.keys.values())
            assert node.published()["home"]["secret_sha256"] == node.home_hash
            _, new_hash = secret_and_hash()
            await node.reload(new_hash, node.office_hash)
            changed = time.monotonic()
            # Gateways hear at once; the peer stays until they have had two polls to.
            assert set(node.published()) == {"office"}
            assert node.peers() == set(node.keys.values())
            async with asyncio.timeout(10):
                while node.keys["h"] in node.peers():
                    await asyncio.sleep(0.05)
            assert time.monotonic() - changed >= 2 * POLL
            assert node.peers() == {node.keys["o"]}
        finally:
            node.sidecar.stop()

    run_in(node.namespace, scenario)


def test_reloads_during_the_wait_keep_each_removal_in_its_order(lab: Lab, tmp_path: Path) -> None:
    node = NamespacedSidecar(lab, tmp_path)

    async def scenario() -> None:
        node.sidecar.start()
        try:
            node.register_both()
            _, changed = secret_and_hash()
            await node.reload(changed, node.office_hash)  # home goes: its peer in 2 s
            await asyncio.sleep(1.0)
            await node.reload(changed)  # office goes too: its own full wait, from now
            assert node.published() == {}
            await asyncio.sleep(1.5)
            assert node.peers() == {node.keys["o"]}  # home's time came, office's not yet
            await asyncio.sleep(1.0)
            assert node.peers() == set()
            # The policy takes home back, and its agent registers again with the same key
            # while the removal from the reload before is still pending: the new peer stays.
            await node.reload(node.home_hash)
            node.sidecar.register("home", node.home, node.keys["h"], "test")
            await node.reload(changed)
            await node.reload(node.home_hash)
            node.sidecar.register("home", node.home, node.keys["h"], "test")
            await asyncio.sleep(2 * POLL + 0.5)
            assert node.peers() == {node.keys["h"]}
            assert node.published()["home"]["secret_sha256"] == node.home_hash
        finally:
            node.sidecar.stop()

    run_in(node.namespace, scenario)


def test_the_answer_names_this_node_and_lists_it_for_the_agent(lab: Lab, tmp_path: Path) -> None:
    """One node (memory:// storage) lists only itself; the agent then keeps just its tunnel."""
    node = NamespacedSidecar(lab, tmp_path, extra="node: {name: a, url: https://a.test}\n")

    async def scenario() -> None:
        node.sidecar.start()
        try:
            answer = node.sidecar.register("home", node.home, node.keys["h"], "test")
        finally:
            node.sidecar.stop()
        assert answer["node"] == "a"
        assert answer["nodes"] == [{"name": "a", "url": "https://a.test"}]

    run_in(node.namespace, scenario)


def nft(namespace: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return namespace.run(["nft", *args])


def test_the_isolation_table_comes_with_the_sidecar_and_goes_with_it(
    lab: Lab, tmp_path: Path
) -> None:
    node = NamespacedSidecar(lab, tmp_path)
    interface = node.sidecar.wireguard.interface

    async def scenario() -> None:
        node.sidecar.start()
        listed = nft(node.namespace, "list", "table", "inet", "warren").stdout
        assert f'iifname "{interface}"' in listed
        assert f'oifname "{interface}"' in listed
        # Debian's `systemctl restart nftables` flushes every table: the watch puts it back.
        nft(node.namespace, "flush", "ruleset")
        watch = asyncio.create_task(node.sidecar.watch())
        try:
            async with asyncio.timeout(10):
                while nft(node.namespace, "list", "table", "inet", "warren").returncode != 0:
                    await asyncio.sleep(0.1)
        finally:
            watch.cancel()
            node.sidecar.stop()
        assert nft(node.namespace, "list", "table", "inet", "warren").returncode != 0

    run_in(node.namespace, scenario)
