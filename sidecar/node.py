"""The node's sidecar: owns the WireGuard interface, registers sites, keeps peers in step with
policy.yaml's `sites`, watches each site's tunnel, and tells the gateway through sites.json.

A site that leaves the policy, or whose secret changes, leaves sites.json at once and loses its
peer only `retire_after` later: gateways poll sites.json every `reload_poll`, so by then none of
them routes a request into the tunnel that is going (DESIGN: nothing on the request path waits
for the sidecar, and no request may hang on a tunnel the node has just taken down).
"""

import asyncio
import contextlib
import logging
import time
from ipaddress import IPv4Interface
from typing import Any

from core.files import write_atomically
from core.logs import event
from core.policy.compiled import Policy
from core.policy.store import PolicyStore
from core.settings import Settings
from core.tunnels import PROBE_PORT, SiteState, encode_sites, sites_file
from sidecar import isolation, links, wgkeys
from sidecar.backends import open_device
from sidecar.device import Device, Peer, PeerStatus
from sidecar.nodelist import NodeList
from sidecar.registry import Allocation, RegistrationRefused, Registry, secret_matches
from sidecar.sockets import reachable
from sidecar.streamnode import Streams

log = logging.getLogger("warren.sidecar")

KEEPALIVE = 15  # seconds; what sites send when idle, so NAT mappings on their side stay open
OFFLINE_AFTER = 2  # failed probes in a row
# Gateways must see a site leave sites.json before its peer goes: two of their polls, and never
# less than this (an event loop busy with traffic polls late).
RETIRE_POLLS = 2
RETIRE_AT_LEAST = 1.0  # seconds


class NodeSidecar:
    def __init__(self, settings: Settings, store: PolicyStore) -> None:
        self.settings = settings
        self.store = store
        self.wireguard = settings.wireguard
        directory = settings.state_dir / "sidecar"
        self.private_key = wgkeys.load_or_create(directory / "node.key")
        self.public_key = wgkeys.public_key(self.private_key)
        self.registry = Registry(directory / "state.json", self.wireguard.subnet)
        self.nodes = NodeList(settings)  # listed in every answer; NodeList.follow reads it
        self.online: dict[str, bool] = {}
        self.recoveries: dict[str, int] = {}  # offline -> online again, per site (metrics)
        self.interface_recoveries = 0  # the interface brought back by the watch (metrics)
        self._failures: dict[str, int] = {}
        self._failures_seen: set[str] = set()  # sites that went offline once: a return recovers
        self._published: bytes | None = None
        self._device: Device | None = None
        self._wake = asyncio.Event()
        self.retire_after = max(
            RETIRE_POLLS * settings.reload_poll.total_seconds(), RETIRE_AT_LEAST
        )
        self._retiring: set[asyncio.TimerHandle] = set()
        self.streams = Streams(self.may_stream, self.wireguard.listen_port)  # TCP/443 fallback

    @property
    def device(self) -> Device:
        assert self._device is not None, "start() first"
        return self._device

    @property
    def address(self) -> IPv4Interface:
        return IPv4Interface(f"{self.registry.node_address}/{self.wireguard.subnet.prefixlen}")

    def start(self) -> None:
        if self.registry.reconcile(self.store.current.model):
            self.registry.save()
        self.publish()  # every site offline until probed, and none the policy dropped
        # Isolation before the interface: never a moment with the interface up and forwarding.
        isolation.apply(self.wireguard.isolate, self.wireguard.interface)
        self._device = open_device(self.wireguard.interface, self.wireguard.backend)
        self._apply_all()
        log.info(
            "%s (%s backend) up as %s, key %s, %d sites restored",
            self.wireguard.interface,
            self.device.backend,
            self.address,
            self.public_key,
            len(self.registry.sites),
        )

    def stop(self) -> None:
        for handle in self._retiring:
            handle.cancel()  # the interface goes with every peer
        self._retiring.clear()
        self.online.clear()
        self.publish()
        if self._device is not None:
            self._device.close()
        if self.wireguard.isolate:
            try:
                isolation.remove()  # after the interface: nothing left to forward from or to
            except isolation.IsolationError as error:
                log.error("leaving the isolation table in place: %s", error)

    def _apply_all(self) -> None:
        peers = [_peer(allocation) for allocation in self.registry.sites.values()]
        self.device.configure(self.private_key, self.wireguard.listen_port, peers)
        links.bring_up(self.wireguard.interface, self.address)

    def register(self, site: str, secret: str, public_key: str, caller: str) -> dict[str, Any]:
        model = self.store.current.model
        if not secret_matches(model, site, secret):
            event(
                log,
                "site-registration-refused",
                site=site,
                client=caller,
                reason="wrong secret",
                level=logging.WARNING,
            )
            raise RegistrationRefused(401, "unknown site or wrong secret")
        if not wgkeys.is_key(public_key):
            raise RegistrationRefused(400, "public_key is not a WireGuard public key")
        before = self.registry.sites.get(site)
        allocation, replaced = self.registry.register(model, site, public_key)
        if allocation != before:
            # State first: a crash between the two never leaves a peer the state does not know.
            self.registry.save()
            self.device.set_peers([_peer(allocation)], remove=[replaced] if replaced else [])
            event(
                log,
                "site-registered",
                site=site,
                client=caller,
                address=str(allocation.address),
                public_key=public_key,  # the public half: what `wg show` lists
                replaced_key=replaced is not None,
            )
            self._wake.set()
            self.publish()
        return self._answer(site, allocation)

    def may_stream(self, site: str, secret: str) -> bool:
        """A stream only for a site registered under the policy's current secret: the one
        whose peer the node's WireGuard has."""
        allocation = self.registry.sites.get(site)
        model = self.store.current.model
        return (
            secret_matches(model, site, secret)
            and allocation is not None
            and allocation.secret_sha256 == model.sites[site].secret_sha256
        )

    def _answer(self, site: str, allocation: Allocation) -> dict[str, Any]:
        return {
            "site": site,
            "address": str(allocation.address),
            "node_address": str(self.registry.node_address),
            "node_public_key": self.public_key,
            "endpoint": self.wireguard.endpoint,
            "listen_port": self.wireguard.listen_port,
            "keepalive": KEEPALIVE,
            "probe_port": PROBE_PORT,
            "forwards": [forward.as_dict() for forward in allocation.forwards],
            # Several nodes: the agent keeps a tunnel to each (docs/tunnels.md). Older agents
            # ignore both; `node` tells the agent which node this is, whatever URL it used.
            "node": self.nodes.name,
            "nodes": self.nodes.current(),
        }

    def on_policy(self, policy: Policy) -> None:
        before = dict(self.registry.sites)
        removed = self.registry.reconcile(policy.model)
        if self.registry.sites != before:
            self.registry.save()
        for name in set(self.online) - set(self.registry.sites):
            self.online.pop(name)
            self._failures.pop(name, None)
        self.publish()  # first: gateways stop routing to the sites that went
        self.streams.keep_only(set(self.registry.sites))
        if removed:
            self._retire_later(removed)

    def _retire_later(self, public_keys: list[str]) -> None:
        """Remove these peers once gateways have seen them leave sites.json. A timer, not a
        wait: the loop goes on serving registrations and probes, and each reload's removals keep
        their own delay whatever reloads follow."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            assert handle is not None
            self._retiring.discard(handle)
            self._retire(public_keys)

        handle = loop.call_later(self.retire_after, due)
        self._retiring.add(handle)
        log.info("%d peer(s) out of routing; removed in %.1fs", len(public_keys), self.retire_after)

    def _retire(self, public_keys: list[str]) -> None:
        # A site that registered again in the meantime (the policy took it back, or its agent
        # came with the new secret) may hold one of these keys now: that peer is its own.
        held = {allocation.public_key for allocation in self.registry.sites.values()}
        stale = [key for key in public_keys if key not in held]
        if not stale:
            return
        try:
            self.device.set_peers([], remove=stale)
        except Exception as error:  # the interface in trouble: the watch heals it, try again
            log.error("removing %d peer(s) failed: %r; trying again", len(stale), error)
            self._retire_later(stale)
            return
        log.info("%d peer(s) removed", len(stale))

    async def watch(self) -> None:
        """Forever: repair the interface if it went away, probe every site, publish."""
        interval = self.wireguard.probe_interval.total_seconds()
        while True:
            try:
                self._heal()
                await self._keep_isolated()
                await self._probe_all(timeout=min(1.0, interval))
                self.publish()
            except Exception:  # the watch must outlive any one failure
                log.exception("watching the tunnels failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()

    def _heal(self) -> None:
        if self.device.alive():
            return
        log.error("%s went away; bringing it back with every peer", self.wireguard.interface)
        self.device.close()
        self._device = open_device(self.wireguard.interface, self.wireguard.backend)
        self._apply_all()
        self.interface_recoveries += 1

    async def _keep_isolated(self) -> None:
        interface = self.wireguard.interface
        if not self.wireguard.isolate or await asyncio.to_thread(isolation.present, interface):
            return
        log.error("the isolation table went away (nftables reloaded?); putting it back")
        await asyncio.to_thread(isolation.install, interface)

    async def _probe_all(self, timeout: float) -> None:
        # A peer that never completed a handshake has no endpoint: nothing to probe, and a probe
        # would only make WireGuard log that it cannot send.
        endpoints = {p.public_key: p.endpoint for p in self.device.peers() if p.endpoint}
        if self.registry.note_endpoints(endpoints):
            self.registry.save()
        reached = set(endpoints)
        names = list(self.registry.sites)
        results = await asyncio.gather(
            *(
                reachable(str(self.registry.sites[name].address), PROBE_PORT, timeout)
                if self.registry.sites[name].public_key in reached
                else _false()
                for name in names
            )
        )
        for name, answered in zip(names, results, strict=True):
            if name not in self.registry.sites:
                continue  # removed by a reload while we waited
            failures = 0 if answered else self._failures.get(name, 0) + 1
            self._failures[name] = failures
            was = self.online.get(name, False)
            now = answered or (was and failures < OFFLINE_AFTER)
            if now != was:
                event(
                    log,
                    "site-online" if now else "site-offline",
                    site=name,
                    level=logging.INFO if now else logging.WARNING,
                )
                if now and name in self._failures_seen:
                    self.recoveries[name] = self.recoveries.get(name, 0) + 1
                if not now:
                    self._failures_seen.add(name)
            self.online[name] = now

    def publish(self) -> None:
        data = encode_sites(
            {
                name: SiteState(
                    str(allocation.address),
                    self.online.get(name, False),
                    allocation.forwards,
                    allocation.secret_sha256,
                )
                for name, allocation in self.registry.sites.items()
            }
        )
        if data != self._published:
            write_atomically(sites_file(self.settings.state_dir), data, mode=0o644)
            self._published = data

    def status(self) -> dict[str, Any]:
        try:
            seen = {peer.public_key: peer for peer in self.device.peers()}
        except Exception as error:  # status must answer even when the interface is in trouble
            log.warning("reading peers failed: %r", error)
            seen = {}
        sites = []
        for name in sorted(self.store.current.model.sites):
            allocation = self.registry.sites.get(name)
            peer = seen.get(allocation.public_key) if allocation is not None else None
            state = _site_status(name, allocation, peer, self.online.get(name, False))
            state["transport"] = self.streams.transport_of(name, state["endpoint"])
            sites.append(state)
        return {
            "ok": True,
            "interface": self.wireguard.interface,
            "backend": self.device.backend,
            "address": str(self.address),
            "public_key": self.public_key,
            "sites": sites,
        }


async def _false() -> bool:
    return False


def _peer(allocation: Allocation) -> Peer:
    return Peer(allocation.public_key, (f"{allocation.address}/32",), allocation.endpoint)


def _site_status(
    name: str, allocation: Allocation | None, peer: PeerStatus | None, online: bool
) -> dict[str, Any]:
    handshake = peer.last_handshake if peer is not None else None
    return {
        "site": name,
        "online": online,
        "address": str(allocation.address) if allocation is not None else None,
        "endpoint": peer.endpoint if peer is not None else None,
        "last_handshake": handshake,
        "handshake_age": round(time.time() - handshake, 1) if handshake else None,
        "rx_bytes": peer.rx_bytes if peer is not None else 0,
        "tx_bytes": peer.tx_bytes if peer is not None else 0,
    }
