"""The site agent: dials out to a node over WireGuard and carries its traffic to local targets.

It keeps its WireGuard key, registers over the node's HTTPS with the site's secret, brings up its
interface, and forwards from its tunnel address. Then it watches the tunnel: a probe to the node's
tunnel address every few seconds. When the probes stop answering it registers again, with
jittered exponential backoff, for as long as it takes; it never needs a restart. Every refresh it
registers again anyway, which is how it learns changed forwards.
"""

import asyncio
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from core.tunnels import REGISTER_PATH, Forward, Protocol
from sidecar import keys, links
from sidecar.backoff import Backoff
from sidecar.device import BackendChoice, Device, DeviceError, Peer, open_device
from sidecar.forward import Forwarders
from sidecar.sockets import answer_probes, reachable

log = logging.getLogger("warren.site")

DEAD_AFTER = 3  # probes in a row without an answer


class RegistrationError(Exception):
    pass


class _Forward(BaseModel):
    protocol: Protocol
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


@dataclass(frozen=True)
class AgentOptions:
    node: str
    site: str
    secret: str = field(repr=False)
    state_dir: Path
    interface: str
    backend: BackendChoice = "auto"
    ca_file: Path | None = None
    probe_interval: float = 2.0
    refresh: float = 10.0


class SiteAgent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.private_key = keys.load_or_create(options.state_dir / f"{options.site}.key")
        self.public_key = keys.public_key(self.private_key)
        self.forwarders = Forwarders()
        self.backoff = Backoff()
        self.device: Device | None = None
        self.current: Registration | None = None
        self._probes: asyncio.Server | None = None
        self._probe_place: tuple[str, int | None] | None = None

    async def run(self) -> None:
        context = ssl.create_default_context(
            cafile=str(self.options.ca_file) if self.options.ca_file else None
        )
        connector = aiohttp.TCPConnector(ssl=context, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                answer = await self._register_until_accepted(http)
                try:
                    await self._apply(answer, new_session=self.current is not None)
                except (DeviceError, OSError) as error:
                    delay = self.backoff.next()
                    log.error("bringing up the tunnel failed: %s; again in %.1fs", error, delay)
                    await asyncio.sleep(delay)
                    continue
                await self._keep(http)
                log.warning(
                    "no answer from the node through the tunnel for %d probes; registering again",
                    DEAD_AFTER,
                )
                await asyncio.sleep(self.backoff.next())

    def close(self) -> None:
        self.forwarders.close()
        if self._probes is not None:
            self._probes.close()
        if self.device is not None:
            self.device.close()

    async def _register_until_accepted(self, http: aiohttp.ClientSession) -> Registration:
        while True:
            try:
                return await self._register(http)
            except RegistrationError as error:
                delay = self.backoff.next()
                log.warning("registration failed: %s; trying again in %.1fs", error, delay)
                await asyncio.sleep(delay)

    async def _register(self, http: aiohttp.ClientSession) -> Registration:
        url = self.options.node.rstrip("/") + REGISTER_PATH
        body = {"site": self.options.site, "public_key": self.public_key}
        headers = {"authorization": f"Bearer {self.options.secret}"}
        try:
            async with http.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                answer: Any = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RegistrationError(f"cannot reach {self.options.node}: {error!r}") from None
        if status != 200:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise RegistrationError(f"the node answered {status}: {reason}")
        try:
            return Registration.model_validate(answer)
        except ValidationError as error:
            raise RegistrationError(f"the node's answer is not a registration: {error}") from None

    async def _apply(self, answer: Registration, new_session: bool = False) -> None:
        """Bring the tunnel to what the node answered. `new_session` drops the WireGuard session
        so the next packet starts a handshake (after a dead tunnel: the node may have restarted
        and forgotten it; WireGuard alone would wait up to 15 s to notice)."""
        endpoint = await self._endpoint(answer)
        fresh = self.device is None or not self.device.alive()
        if fresh:
            if self.device is not None:
                log.error("%s went away; making it again", self.options.interface)
                self.device.close()
            self.device = open_device(self.options.interface, self.options.backend)
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
            self.device.configure(self.private_key, None, [peer])
        else:
            self.device.set_peers([peer])  # keeps the session: no new handshake needed
        links.bring_up(
            self.options.interface,
            IPv4Interface(f"{answer.address}/32"),
            routes=(IPv4Network(f"{answer.node_address}/32"),),
        )
        index = links.index_of(self.options.interface)
        await self.forwarders.reconcile(
            str(answer.address), self.options.interface, index, answer.forward_list()
        )
        await self._answer_probes(str(answer.address), answer.probe_port, index)
        if answer != previous:
            log.info(
                "registered with %s as %s (node %s at %s), %d forwards",
                self.options.node,
                answer.address,
                answer.node_address,
                endpoint,
                len(answer.forwards),
            )
        self.current = answer

    async def _answer_probes(self, address: str, port: int, index: int | None) -> None:
        if self._probe_place == (address, index) and self._probes is not None:
            return
        if self._probes is not None:
            self._probes.close()
        self._probes = await answer_probes(address, port, self.options.interface)
        self._probe_place = (address, index)

    async def _endpoint(self, answer: Registration) -> str:
        """The node's WireGuard endpoint as an address (WireGuard takes no names), resolved
        afresh at every registration so a node that moved is found again."""
        if answer.endpoint is not None:
            host, _, port_text = answer.endpoint.rpartition(":")
            host, port = host.strip("[]"), int(port_text)
        else:
            host, port = urlsplit(self.options.node).hostname or "", answer.listen_port
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as error:
            raise DeviceError(f"cannot resolve the node's endpoint {host}: {error}") from None
        family, _type, _proto, _name, address = found[0]
        return f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"

    async def _keep(self, http: aiohttp.ClientSession) -> None:
        """Returns when the tunnel looks dead."""
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
                if time.monotonic() - refreshed >= self.options.refresh:
                    refreshed = time.monotonic()
                    await self._refresh(http, current)
            except (DeviceError, OSError) as error:
                log.error("repairing the tunnel failed: %s", error)

    async def _refresh(self, http: aiohttp.ClientSession, current: Registration) -> None:
        try:
            answer = await self._register(http)
        except RegistrationError as error:
            log.info("refreshing the registration failed (tunnel kept): %s", error)
            return
        if answer != current:
            await self._apply(answer)
