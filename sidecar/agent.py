"""The site agent: keeps a tunnel to every node (sidecar.nodelink, one link per node) and carries
their traffic to local targets.

It starts with the nodes given with `--node`. Every registration answer lists the nodes sharing
that node's storage (sidecar.nodelist); a node it has no link to gets one, registering with the
same site secret and the same WireGuard key (each node is a peer of its own interface, so one
key serves all), on an interface of its own with the address that node gave, its forwards
bound to that address and interface only. A node that the lists leave out MISSED_BEFORE_DROP
times in a row while its link is down has left: its link and interface go. The `--node` ones
stay however long they are away, as a single node's link always has.

Each link registers, backs off and recovers on its own: one node down, refusing or slow never
touches another's tunnel.
"""

import asyncio
import logging
import ssl
from collections.abc import Sequence

import aiohttp

from sidecar import wgkeys
from sidecar.backoff import Backoff
from sidecar.interfaces import InterfaceNames
from sidecar.nodelink import AgentOptions, Coordinator, NodeEntry, NodeLink, Registration

__all__ = ["AgentOptions", "SiteAgent"]

log = logging.getLogger("warren.site")

MISSED_BEFORE_DROP = 3  # node lists in a row without the node (each registration brings one)


class SiteAgent(Coordinator):
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.private_key = wgkeys.load_or_create(options.state_dir / f"{options.site}.key")
        self.public_key = wgkeys.public_key(self.private_key)
        self.names = InterfaceNames(
            options.state_dir / f"{options.site}.interfaces.json", options.interface
        )
        self.links: list[NodeLink] = []
        self._tasks: dict[NodeLink, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        context = ssl.create_default_context(
            cafile=str(self.options.ca_file) if self.options.ca_file else None
        )
        connector = aiohttp.TCPConnector(ssl=context, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            self._http = http
            try:
                for url in dict.fromkeys(url.rstrip("/") for url in self.options.nodes):
                    self._add(url, seed=True)
                await asyncio.Event().wait()  # the links run until the agent is stopped
            finally:
                for task in self._tasks.values():
                    task.cancel()

    def close(self) -> None:
        for link in self.links:
            link.close()

    def _add(self, url: str, seed: bool, node: str | None = None) -> None:
        link = NodeLink(
            url, self.options, self.private_key, self.public_key, self, seed=seed, node=node
        )
        self.links.append(link)
        self._tasks[link] = asyncio.get_running_loop().create_task(self._supervise(link))
        if not seed:
            log.info("%s joined: keeping a tunnel to it too", link.label)

    async def _supervise(self, link: NodeLink) -> None:
        """A link's run, made again after anything unexpected: one link's trouble is its own."""
        assert self._http is not None
        backoff = Backoff()
        while True:
            try:
                await link.run(self._http)
            except Exception:
                link.close()
                delay = backoff.next()
                log.exception("%s: the link failed; making it again in %.1fs", link.label, delay)
                await asyncio.sleep(delay)
                continue
            self._remove(link, forget=False)  # the same node as another link: nothing to forget
            return

    def _remove(self, link: NodeLink, forget: bool) -> None:
        self.links.remove(link)
        task = self._tasks.pop(link)
        if task is not asyncio.current_task():
            task.cancel()
        link.close()
        if forget and link.interface is not None:
            self.names.forget(link.node or link.url)

    # The Coordinator's part: what links ask.

    def claim(self, link: NodeLink, node: str) -> bool:
        for other in list(self.links):
            if other is link or other.node != node:
                continue
            if other.up:
                log.info(
                    "%s is node %s, which %s already serves: one tunnel per node",
                    link.url,
                    node,
                    other.url,
                )
                other.seed = other.seed or link.seed
                return False
            # The other one is not through (yet): this one has just registered, so it takes over.
            link.seed = link.seed or other.seed
            link.interface = link.interface or other.interface
            self._remove(other, forget=False)
        return True

    def heard(self, link: NodeLink, nodes: Sequence[NodeEntry]) -> None:
        if not nodes:
            return  # a single node, or one that predates the list: it says nothing of others
        names = {entry.name for entry in nodes}
        urls = {entry.url for entry in nodes}
        for entry in nodes:
            if not any(other.node == entry.name or other.url == entry.url for other in self.links):
                self._add(entry.url, seed=False, node=entry.name)
        for other in list(self.links):
            if other.node in names or other.url in urls:
                other.missed = 0
                continue
            other.missed += 1
            if (
                other is not link
                and not other.seed
                and not other.up
                and other.missed >= MISSED_BEFORE_DROP
            ):
                log.warning(
                    "%s left the nodes' lists and is unreachable: tunnel removed", other.label
                )
                self._remove(other, forget=True)

    def clash(self, link: NodeLink, answer: Registration) -> str | None:
        """Two tunnels whose addresses meet would take each other's routes on this host: the
        nodes' subnets overlap (core.cluster.subnets refuses that on the nodes; this holds even
        for nodes that started at the same moment, or share no storage)."""
        mine = {answer.address, answer.node_address}
        for other in self.links:
            current = other.current
            if other is link or current is None:
                continue
            if mine & {current.address, current.node_address}:
                return (
                    f"its tunnel addresses {answer.address} -> {answer.node_address} meet "
                    f"{other.label}'s {current.address} -> {current.node_address}; give each "
                    "node a wireguard.subnet of its own"
                )
        return None

    def interface_for(self, node: str) -> str:
        return self.names.name_for(node)
