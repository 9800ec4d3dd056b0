"""One site agent's tunnel to one node: register over the node's HTTPS with the site's secret,
bring up a WireGuard interface of its own, forward from its tunnel address, and watch it.

The watch is a probe to the node's tunnel address every few seconds. When the probes stop
answering the link registers again, with jittered exponential backoff, for as long as it takes;
it never needs a restart. Every refresh it registers again anyway, which is how it learns
changed forwards and the nodes it should also keep a tunnel to (sidecar.agent, which runs one
link per node). Nothing a link does touches another link's interface, forwards or backoff.
"""

import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from core.tunnels import REGISTER_PATH, Forward
from core.tunnels import Protocol as ForwardProtocol
from sidecar import links
from sidecar.backends import open_device
from sidecar.backoff import Backoff
from sidecar.device import BackendChoice, Device, DeviceError, Peer
from sidecar.forward import Forwarders
from sidecar.sockets import answer_probes, reachable
from sidecar.streamlink import StreamLink
from sidecar.transport import TransportChoice

log = logging.getLogger("warren.site")

DEAD_AFTER = 3  # probes in a row without an answer


class RegistrationError(Exception):
    pass


class _Forward(BaseModel):
    protocol: ForwardProtocol
    host: str
    target_port: int
    port: int


class Registration(BaseModel):
    """The node's answer: where this site's tunnel ends and what it carries."""

    model_config = ConfigDict(frozen=True)

    site: str
    address: IPv4Address
    node_address: IPv4Address
    node_public_key: str
    endpoint: str | None
    listen_port: int
    keepalive: int
    probe_port: int
    forwards: tuple[_Forward, ...]

    def forward_list(self) -> list[Forward]:
        return [Forward(f.protocol, f.host, f.target_port, f.port) for f in self.forwards]


class NodeEntry(NamedTuple):
    """A node the answer lists: a site keeps a tunnel to each."""

    name: str
    url: str


class Answer(NamedTuple):
    registration: Registration
    node: str | None  # the node's name; None from a node that predates several nodes
    nodes: tuple[NodeEntry, ...]


@dataclass(frozen=True)
class AgentOptions:
    nodes: tuple[str, ...]  # the URLs given with --node; the answers add the others
    site: str
    secret: str = field(repr=False)
    state_dir: Path
    interface: str  # the first node's; the others' are numbered from it (sidecar.interfaces)
    backend: BackendChoice = "auto"
    ca_file: Path | None = None
    probe_interval: float = 2.0
    refresh: float = 10.0
    fallback_after: float = 12.0  # no UDP handshake this long: TCP/443 (sidecar.transport)
    retry_udp: float = 60.0  # on TCP/443, how often UDP is tried again


class Coordinator(Protocol):
    """What a link asks of the agent that runs every link (sidecar.agent.SiteAgent)."""

    def claim(self, link: "NodeLink", node: str) -> bool:
        """False when another link already serves this node: this one must end."""

    def heard(self, link: "NodeLink", nodes: Sequence[NodeEntry]) -> None:
        """A registration's list of nodes: links for new ones, and the count of missing ones."""

    def clash(self, link: "NodeLink", answer: Registration) -> str | None:
        """Why these tunnel addresses cannot sit beside another link's, or None."""

    def interface_for(self, node: str) -> str: ...


class NodeLink:
    def __init__(
        self,
        url: str,
        options: AgentOptions,
        private_key: str,
        public_key: str,
        coordinator: Coordinator,
        seed: bool = False,
        node: str | None = None,
    ) -> None:
        self.url = url
        self.options = options
        self.private_key = private_key
        self.public_key = public_key
        self.coordinator = coordinator
        self.seed = seed  # given with --node: kept however long its node is away
        self.node = node  # the node's name: as a list said, then as the node itself answers
        self.missed = 0  # node lists in a row that left this node out
        self.up = False  # registered, interface up, probes answered lately
        self.interface: str | None = None
        self.forwarders = Forwarders()
        self.backoff = Backoff()
        self.device: Device | None = None
        self.current: Registration | None = None
        self._probes: asyncio.Server | None = None
        self._probe_place: tuple[str, int | None] | None = None
        self.choice = TransportChoice(options.fallback_after, options.retry_udp)
        self.stream: StreamLink | None = None  # the TCP/443 fallback, while the choice needs it
        self._http: aiohttp.ClientSession | None = None
        self._peer_endpoint: str | None = None  # as configured: a handshake counts for it only

    @property
    def label(self) -> str:
        return self.url if self.node is None else f"node {self.node} ({self.url})"

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Forever, unless another link turns out to serve the same node: then it returns."""
        self._http = http
        while True:
            answer = await self._register_until_accepted(http)
            if answer is None:
                return
            try:
                self._decide_way()
                await self._apply(answer, new_session=self.current is not None)
            except (DeviceError, OSError) as error:
                delay = self.backoff.next()
                log.error(
                    "%s: bringing up the tunnel failed: %s; again in %.1fs",
                    self.label,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self.up = True
            ended = await self._keep(http)
            self.up = False
            if ended:
                return
            log.warning(
                "%s: no answer through the tunnel for %d probes; registering again",
                self.label,
                DEAD_AFTER,
            )
            await asyncio.sleep(self.backoff.next())

    def close(self) -> None:
        """Everything this link holds, its interface included."""
        self.up = False
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.forwarders.close()
        if self._probes is not None:
            self._probes.close()
            self._probes = None
        if self.device is not None:
            self.device.close()
            self.device = None

    async def _register_until_accepted(self, http: aiohttp.ClientSession) -> Registration | None:
        """The answer to use, or None when this link must end."""
        while True:
            try:
                found = await self._registered(http)
            except RegistrationError as error:
                delay = self.backoff.next()
                log.warning(
                    "%s: registration failed: %s; trying again in %.1fs", self.label, error, delay
                )
                await asyncio.sleep(delay)
                continue
            if found is None:
                return None
            clash = self.coordinator.clash(self, found)
            if clash is None:
                return found
            delay = self.backoff.next()
            log.error("%s: refusing its tunnel: %s; again in %.1fs", self.label, clash, delay)
            await asyncio.sleep(delay)

    async def _registered(self, http: aiohttp.ClientSession) -> Registration | None:
        """Register; tell the coordinator who answered and whom it listed. None: the node is one
        another link serves."""
        answer = await self._register(http)
        if answer.node is not None:
            if not self.coordinator.claim(self, answer.node):
                return None
            if answer.node != self.node:
                self.node = answer.node
        self.coordinator.heard(self, answer.nodes)
        return answer.registration

    async def _register(self, http: aiohttp.ClientSession) -> Answer:
        url = self.url.rstrip("/") + REGISTER_PATH
        body = {"site": self.options.site, "public_key": self.public_key}
        headers = {"authorization": f"Bearer {self.options.secret}"}
        try:
            async with http.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                answer: Any = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RegistrationError(f"cannot reach {self.url}: {error!r}") from None
        if status != 200:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise RegistrationError(f"the node answered {status}: {reason}")
        try:
            registration = Registration.model_validate(answer)
        except ValidationError as error:
            raise RegistrationError(f"the node's answer is not a registration: {error}") from None
        node = answer.get("node")
        return Answer(
            registration, node if isinstance(node, str) and node else None, _nodes(answer)
        )

    async def _apply(self, answer: Registration, new_session: bool = False) -> None:
        """Bring the tunnel to what the node answered. `new_session` drops the WireGuard session
        so the next packet starts a handshake (after a dead tunnel: the node may have restarted
        and forgotten it; WireGuard alone would wait up to 15 s to notice)."""
        if self.interface is None:
            self.interface = self.coordinator.interface_for(self.node or self.url)
        interface = self.interface
        endpoint = await self._way_endpoint(await self._endpoint(answer))
        fresh = self.device is None or not self.device.alive()
        if fresh:
            if self.device is not None:
                log.error("%s: %s went away; making it again", self.label, interface)
                self.device.close()
            self.device = open_device(interface, self.options.backend)
        assert self.device is not None
        peer = Peer(
            answer.node_public_key, (f"{answer.node_address}/32",), endpoint, answer.keepalive
        )
        previous = self.current
        if (
            fresh
            or new_session
            or previous is None
            or previous.node_public_key != answer.node_public_key
        ):
            # Before the session starts: its handshake can complete within a millisecond, and
            # one that seemed to come before the session would never count for it.
            self.choice.new_session()
            self.device.configure(self.private_key, None, [peer])
        else:
            self.device.set_peers([peer])  # keeps the session: no new handshake needed
        links.bring_up(
            interface,
            IPv4Interface(f"{answer.address}/32"),
            routes=(IPv4Network(f"{answer.node_address}/32"),),
        )
        index = links.index_of(interface)
        await self.forwarders.reconcile(
            str(answer.address), interface, index, answer.forward_list()
        )
        await self._answer_probes(str(answer.address), answer.probe_port, index)
        if answer != previous:
            log.info(
                "registered with %s as %s on %s (node %s at %s), %d forwards",
                self.label,
                answer.address,
                interface,
                answer.node_address,
                endpoint,
                len(answer.forwards),
            )
        self.current = answer

    async def _way_endpoint(self, udp: str) -> str:
        """The endpoint for the way the choice says: the node's UDP one, or the local end of
        the stream, which is opened when the choice needs it and closed when not."""
        if self.choice.needs_stream and self.stream is None:
            assert self._http is not None
            self.stream = StreamLink(self.url, self.options.site, self.options.secret, self.label)
            await self.stream.start(self._http)
        elif not self.choice.needs_stream and self.stream is not None:
            self.stream.close()
            self.stream = None
            log.info("%s: back on UDP; the TCP/443 stream is closed", self.label)
        if self.stream is not None:
            self.stream.deliver = self.choice.way == "tcp"
        endpoint = self.stream.endpoint if self.choice.way == "tcp" and self.stream else udp
        self._peer_endpoint = endpoint
        return endpoint

    def _decide_way(self) -> bool:
        """Ask the choice with WireGuard's last handshake; True when the way changed."""
        if self.device is None or self._peer_endpoint is None:
            return False
        try:
            peers = {peer.public_key: peer for peer in self.device.peers()}
        except (DeviceError, OSError):
            return False  # wireguard-go gone or going: _apply makes it again, then we ask
        found = peers.get(self.current.node_public_key) if self.current is not None else None
        handshake = (
            found.last_handshake
            if found is not None and found.endpoint == self._peer_endpoint
            else None
        )
        way = self.choice.decide(handshake)
        if way is None:
            return False
        if way == "tcp":
            log.warning(
                "%s: no WireGuard handshake over UDP in %.0fs; falling back to TCP/443",
                self.label,
                self.options.fallback_after,
            )
        else:
            log.info("%s: trying UDP again (the TCP/443 stream stays open meanwhile)", self.label)
        return True

    async def _answer_probes(self, address: str, port: int, index: int | None) -> None:
        if self._probe_place == (address, index) and self._probes is not None:
            return
        if self._probes is not None:
            self._probes.close()
        self._probes = await answer_probes(address, port, self.interface)
        self._probe_place = (address, index)

    async def _endpoint(self, answer: Registration) -> str:
        """The node's WireGuard endpoint as an address (WireGuard takes no names), resolved
        afresh at every registration so a node that moved is found again."""
        if answer.endpoint is not None:
            host, _, port_text = answer.endpoint.rpartition(":")
            host, port = host.strip("[]"), int(port_text)
        else:
            host, port = urlsplit(self.url).hostname or "", answer.listen_port
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as error:
            raise DeviceError(f"cannot resolve the node's endpoint {host}: {error}") from None
        family, _type, _proto, _name, address = found[0]
        return f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"

    async def _keep(self, http: aiohttp.ClientSession) -> bool:
        """Returns when the tunnel looks dead (False) or the link must end (True)."""
        assert self.current is not None
        failures = 0
        refreshed = time.monotonic()
        interval = self.options.probe_interval
        while failures < DEAD_AFTER:
            await asyncio.sleep(interval)
            current = self.current
            if await reachable(str(current.node_address), current.probe_port, min(1.0, interval)):
                failures = 0
                self.backoff.reset()
            else:
                failures += 1
            try:
                if self.device is None or not self.device.alive():
                    await self._apply(current)  # wireguard-go died or the interface was removed
                elif self._decide_way():
                    await self._apply(current, new_session=True)
                if time.monotonic() - refreshed >= self.options.refresh:
                    refreshed = time.monotonic()
                    if not await self._refresh(http, current):
                        return True
            except (DeviceError, OSError) as error:
                log.error("%s: repairing the tunnel failed: %s", self.label, error)
        return False

    async def _refresh(self, http: aiohttp.ClientSession, current: Registration) -> bool:
        """Register again while the tunnel stands; False when the link must end."""
        try:
            answer = await self._registered(http)
        except RegistrationError as error:
            log.info("%s: refreshing the registration failed (tunnel kept): %s", self.label, error)
            return True
        if answer is None:
            return False
        clash = self.coordinator.clash(self, answer)
        if clash is not None:
            log.error("%s: keeping the tunnel as it was: %s", self.label, clash)
        elif answer != current:
            await self._apply(answer)
        return True


def _nodes(answer: dict[str, Any]) -> tuple[NodeEntry, ...]:
    """The answer's `nodes`, keeping only what a site may send its secret to: https:// origins
    (the secret travels in every registration). Anything else in the list is left out."""
    listed = answer.get("nodes")
    if not isinstance(listed, list):
        return ()
    found: list[NodeEntry] = []
    for entry in listed:
        if not isinstance(entry, dict):
            continue
        name, url = entry.get("name"), entry.get("url")
        if not isinstance(name, str) or not name or not isinstance(url, str):
            continue
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            log.debug("a listed node %s at %r is not https: left out", name, url)
            continue
        found.append(NodeEntry(name, url.rstrip("/")))
    return tuple(found)
