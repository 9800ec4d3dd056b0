"""The node's sidecar: owns the WireGuard interface, registers sites, keeps peers in step with
policy.yaml's `sites`, watches each site's tunnel, and tells the gateway through sites.json."""

import asyncio
import contextlib
import logging
import time
from ipaddress import IPv4Interface
from typing import Any

from core.policy.compiled import Policy
from core.settings import Settings
from core.store import PolicyStore
from core.tunnels import PROBE_PORT, encode_sites, sites_file
from sidecar import keys, links
from sidecar.device import Device, Peer, PeerStatus, open_device
from sidecar.files import write_atomically
from sidecar.registry import Allocation, RegistrationRefused, Registry, secret_matches
from sidecar.sockets import reachable

log = logging.getLogger("warren.sidecar")

KEEPALIVE = 15  # seconds; what sites send when idle, so NAT mappings on their side stay open
OFFLINE_AFTER = 2  # failed probes in a row


class NodeSidecar:
    def __init__(self, settings: Settings, store: PolicyStore) -> None:
        self.settings = settings
        self.store = store
        self.wireguard = settings.wireguard
        directory = settings.state_dir / "sidecar"
        self.private_key = keys.load_or_create(directory / "node.key")
        self.public_key = keys.public_key(self.private_key)
        self.registry = Registry(directory / "state.json", self.wireguard.subnet)
        self.online: dict[str, bool] = {}
        self._failures: dict[str, int] = {}
        self._published: bytes | None = None
        self._device: Device | None = None
        self._wake = asyncio.Event()

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
        self._device = open_device(self.wireguard.interface, self.wireguard.backend)
        self._apply_all()
        self.publish()
        log.info(
            "%s (%s backend) up as %s, key %s, %d sites restored",
            self.wireguard.interface,
            self.device.backend,
            self.address,
            self.public_key,
            len(self.registry.sites),
        )

    def stop(self) -> None:
        self.online.clear()
        self.publish()
        if self._device is not None:
            self._device.close()

    def _apply_all(self) -> None:
        peers = [_peer(allocation) for allocation in self.registry.sites.values()]
        self.device.configure(self.private_key, self.wireguard.listen_port, peers)
        links.bring_up(self.wireguard.interface, self.address)

    def register(self, site: str, secret: str, public_key: str, caller: str) -> dict[str, Any]:
        model = self.store.current.model
        if not secret_matches(model, site, secret):
            log.warning("registration refused for site %r from %s: wrong secret", site, caller)
            raise RegistrationRefused(401, "unknown site or wrong secret")
        if not keys.is_key(public_key):
            raise RegistrationRefused(400, "public_key is not a WireGuard public key")
        before = self.registry.sites.get(site)
        allocation, replaced = self.registry.register(model, site, public_key)
        if allocation != before:
            # State first: a crash between the two never leaves a peer the state does not know.
            self.registry.save()
            self.device.set_peers([_peer(allocation)], remove=[replaced] if replaced else [])
            log.info(
                "site %s registered from %s: %s, key %s%s",
                site,
                caller,
                allocation.address,
                public_key,
                " (replacing its previous key)" if replaced else "",
            )
            self._wake.set()
            self.publish()
        return self._answer(site, allocation)

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
        }

    def on_policy(self, policy: Policy) -> None:
        before = dict(self.registry.sites)
        removed = self.registry.reconcile(policy.model)
        if self.registry.sites != before:
            self.registry.save()
        if removed:
            self.device.set_peers([], remove=removed)
        for name in set(self.online) - set(self.registry.sites):
            self.online.pop(name)
            self._failures.pop(name, None)
        self.publish()

    async def watch(self) -> None:
        """Forever: repair the interface if it went away, probe every site, publish."""
        interval = self.wireguard.probe_interval.total_seconds()
        while True:
            try:
                self._heal()
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
                log.warning("site %s is %s", name, "online" if now else "OFFLINE")
            self.online[name] = now

    def publish(self) -> None:
        data = encode_sites(
            {
                name: (str(allocation.address), self.online.get(name, False), allocation.forwards)
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
            sites.append(_site_status(name, allocation, peer, self.online.get(name, False)))
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
