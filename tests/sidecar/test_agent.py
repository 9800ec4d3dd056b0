"""The site agent's supervisor: which nodes get a link, when a link goes, and what two links may
not share. Its links are real (they try to register with a port nothing listens on, and back
off); the decisions are made as the answers would make them."""

import asyncio
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path

import aiohttp

from demo import processes
from sidecar.agent import MISSED_BEFORE_DROP, SiteAgent
from sidecar.nodelink import AgentOptions, NodeEntry, NodeLink, Registration, _nodes

type Scenario = Callable[[SiteAgent, str], Awaitable[None]]


PORT = processes.free_port()  # nothing listens there, on any loopback address
_made = [0]


def nowhere() -> str:
    """A node URL of its own that refuses every connection."""
    _made[0] += 1
    return f"https://127.0.0.{_made[0] + 1}:{PORT}"


def run(tmp_path: Path, scenario: Scenario) -> None:
    seed = nowhere()
    options = AgentOptions(
        nodes=(seed,), site="home", secret="s", state_dir=tmp_path, interface="wrn-home"
    )

    async def main() -> None:
        agent = SiteAgent(options)
        async with aiohttp.ClientSession() as http:
            agent._http = http
            agent._add(seed, seed=True)
            try:
                await scenario(agent, seed)
            finally:
                for task in agent._tasks.values():
                    task.cancel()
                agent.close()

    asyncio.run(main())


def link_of(agent: SiteAgent, url: str) -> NodeLink:
    (found,) = [link for link in agent.links if link.url == url]
    return found


def registration(address: str, node_address: str) -> Registration:
    return Registration(
        site="home",
        address=IPv4Address(address),
        node_address=IPv4Address(node_address),
        node_public_key="k",
        endpoint=None,
        listen_port=51820,
        keepalive=15,
        probe_port=51820,
        forwards=(),
    )


def test_a_listed_node_gets_a_link_once(tmp_path: Path) -> None:
    other = nowhere()

    async def scenario(agent: SiteAgent, seed: str) -> None:
        first = link_of(agent, seed)
        first.node = "a"
        listed = [NodeEntry("a", seed), NodeEntry("b", other)]
        agent.heard(first, listed)
        agent.heard(first, listed)
        assert sorted(link.url for link in agent.links) == sorted([seed, other])
        added = link_of(agent, other)
        assert (added.node, added.seed) == ("b", False)
        # A node listed under another URL than the one it was reached by is the same node.
        agent.heard(first, [NodeEntry("a", "https://a.example"), NodeEntry("b", other)])
        assert len(agent.links) == 2

    run(tmp_path, scenario)


def test_a_node_left_out_of_the_lists_while_down_is_dropped_with_its_name(tmp_path: Path) -> None:
    other, third = nowhere(), nowhere()

    async def scenario(agent: SiteAgent, seed: str) -> None:
        first = link_of(agent, seed)
        first.node = "a"
        agent.heard(first, [NodeEntry("a", seed), NodeEntry("b", other), NodeEntry("c", third)])
        going, staying = link_of(agent, other), link_of(agent, third)
        first.interface = agent.interface_for("a")
        going.interface = agent.interface_for("b")
        staying.up = True  # its tunnel stands: a list leaving it out is not enough
        for _ in range(MISSED_BEFORE_DROP - 1):
            agent.heard(first, [NodeEntry("a", seed)])
        assert going in agent.links
        agent.heard(first, [NodeEntry("a", seed)])
        assert going not in agent.links
        assert staying in agent.links
        assert going.device is None
        assert agent.interface_for("d") == "wrn-home-1"  # b's name is free again
        # The --node one stays, however long the lists leave it out.
        for _ in range(2 * MISSED_BEFORE_DROP):
            agent.heard(staying, [NodeEntry("c", third)])
        assert first in agent.links
        # An empty list (a single node, or an older one) says nothing about the others.
        staying.up = False
        for _ in range(2 * MISSED_BEFORE_DROP):
            agent.heard(first, [])
        assert staying in agent.links

    run(tmp_path, scenario)


def test_one_tunnel_per_node_whichever_url_reached_it(tmp_path: Path) -> None:
    other = nowhere()

    async def scenario(agent: SiteAgent, seed: str) -> None:
        first = link_of(agent, seed)
        agent.heard(first, [NodeEntry("a", other)])  # a listed URL of the node --node named
        listed = link_of(agent, other)
        # The --node link answers first: the listed one, not through yet, gives way to it.
        assert agent.claim(first, "a")
        assert listed not in agent.links
        first.node, first.up = "a", True
        agent.heard(first, [NodeEntry("a", other)])
        assert agent.links == [first]  # listed under a name a link already serves
        # Two --node URLs of one node: the second's answer names the node the first serves.
        second = nowhere()
        agent._add(second, seed=True)
        assert not agent.claim(link_of(agent, second), "a")  # the tunnel that stands keeps it
        assert first in agent.links

    run(tmp_path, scenario)


def test_tunnel_addresses_that_meet_another_links_are_refused(tmp_path: Path) -> None:
    other = nowhere()

    async def scenario(agent: SiteAgent, seed: str) -> None:
        first = link_of(agent, seed)
        first.current = registration("100.89.1.2", "100.89.1.1")
        agent.heard(first, [NodeEntry("b", other)])
        second = link_of(agent, other)
        assert agent.clash(second, registration("100.89.2.2", "100.89.2.1")) is None
        clash = agent.clash(second, registration("100.89.1.2", "100.89.0.1"))
        assert clash is not None
        assert "wireguard.subnet" in clash
        assert agent.clash(second, registration("100.89.3.2", "100.89.1.1")) is not None
        assert agent.clash(first, registration("100.89.1.2", "100.89.1.1")) is None  # its own

    run(tmp_path, scenario)


def test_only_https_nodes_are_taken_from_an_answer() -> None:
    answer = {
        "nodes": [
            {"name": "a", "url": "https://a.example/"},
            {"name": "b", "url": "http://b.example"},  # the secret would travel in the clear
            {"name": "", "url": "https://c.example"},
            {"url": "https://d.example"},
            "e",
        ]
    }
    assert _nodes(answer) == (NodeEntry("a", "https://a.example"),)
    assert _nodes({}) == ()
    assert _nodes({"nodes": "a"}) == ()
