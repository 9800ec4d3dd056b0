"""Which site holds which tunnel address, WireGuard key and tunnel ports; kept in a state file so
that a sidecar restart brings every peer back with the same addresses.

Pure bookkeeping: `sidecar.node` applies what it decides to the WireGuard interface.
"""

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from core.files import write_atomically
from core.logs import event
from core.policy.model import PolicyFile
from core.tunnels import PROBE_PORT, Forward, ForwardKey, parse_protocol, wanted_forwards

log = logging.getLogger("warren.sidecar")

FIRST_SPARE_PORT = 20000  # where tunnel ports go when a target's own port is taken on the site
_NO_SECRET = "0" * 64


class RegistrationRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Allocation:
    address: IPv4Address
    public_key: str
    secret_sha256: str
    forwards: tuple[Forward, ...] = ()
    # Where the site's packets last came from: restored with the peer, so that after a restart
    # the node can send first instead of waiting for the site to notice and handshake again.
    endpoint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "public_key": self.public_key,
            "secret_sha256": self.secret_sha256,
            "forwards": [forward.as_dict() for forward in self.forwards],
            "endpoint": self.endpoint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Allocation":
        return cls(
            address=IPv4Address(data["address"]),
            public_key=str(data["public_key"]),
            secret_sha256=str(data["secret_sha256"]),
            forwards=tuple(
                Forward(
                    parse_protocol(f["protocol"]), f["host"], int(f["target_port"]), int(f["port"])
                )
                for f in data.get("forwards", ())
            ),
            endpoint=data.get("endpoint"),
        )


def secret_matches(model: PolicyFile, site: str, secret: str) -> bool:
    """Constant time, and the same work for an unknown site as for a wrong secret."""
    entry = model.sites.get(site)
    expected = entry.secret_sha256 if entry is not None else _NO_SECRET
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(digest, expected) and entry is not None


def assign_ports(wanted: Iterable[ForwardKey], existing: Iterable[Forward]) -> tuple[Forward, ...]:
    """A tunnel port for every wanted forward. A forward keeps the port it has; a new one gets
    its target's own port when the site's address has it free, else the first spare one."""
    wanted = set(wanted)
    kept = [forward for forward in existing if forward.key in wanted]
    used = {(forward.protocol, forward.port) for forward in kept} | {("tcp", PROBE_PORT)}
    have = {forward.key for forward in kept}
    for protocol, host, target_port in sorted(wanted - have):
        port = target_port
        if (protocol, port) in used:
            port = FIRST_SPARE_PORT
            while (protocol, port) in used:
                port += 1
        used.add((protocol, port))
        kept.append(Forward(protocol, host, target_port, port))
    return tuple(sorted(kept))


class Registry:
    def __init__(self, path: Path, subnet: IPv4Network) -> None:
        self.path = path
        self.subnet = subnet
        self.node_address = subnet.network_address + 1
        self.sites: dict[str, Allocation] = {}
        self._load()

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        for name, data in document.get("sites", {}).items():
            allocation = Allocation.from_dict(data)
            if allocation.address in self.subnet and allocation.address != self.node_address:
                self.sites[name] = allocation
            else:
                log.warning("site %s: %s is outside %s now", name, allocation.address, self.subnet)

    def save(self) -> None:
        document = {
            "version": 1,
            "sites": {name: a.as_dict() for name, a in sorted(self.sites.items())},
        }
        write_atomically(self.path, json.dumps(document, indent=2).encode() + b"\n")

    def register(
        self, model: PolicyFile, site: str, public_key: str
    ) -> tuple[Allocation, str | None]:
        """The site's allocation with this key, and the key it replaces (None if unchanged).
        The caller has checked the secret."""
        for name, other in self.sites.items():
            if name != site and other.public_key == public_key:
                raise RegistrationRefused(409, f"that WireGuard key belongs to site {name!r}")
        secret_sha256 = model.sites[site].secret_sha256
        current = self.sites.get(site)
        address = current.address if current is not None else self._free_address()
        forwards = assign_ports(
            wanted_forwards(model, site), current.forwards if current is not None else ()
        )
        endpoint = current.endpoint if current and current.public_key == public_key else None
        allocation = Allocation(address, public_key, secret_sha256, forwards, endpoint)
        self.sites[site] = allocation
        replaced = current.public_key if current and current.public_key != public_key else None
        return allocation, replaced

    def reconcile(self, model: PolicyFile) -> list[str]:
        """Follow the policy: sites removed, or whose secret changed, lose their allocation (their
        public keys are returned, to remove); the others get the forwards it now asks for."""
        removed: list[str] = []
        for name, allocation in list(self.sites.items()):
            entry = model.sites.get(name)
            if entry is None or entry.secret_sha256 != allocation.secret_sha256:
                removed.append(allocation.public_key)
                del self.sites[name]
                event(log, "site-removed", site=name, reason=_why(entry))
                continue
            forwards = assign_ports(wanted_forwards(model, name), allocation.forwards)
            if forwards != allocation.forwards:
                self.sites[name] = replace(allocation, forwards=forwards)
        return removed

    def note_endpoints(self, endpoints: dict[str, str]) -> bool:
        """Remember where each site's packets come from (public key -> endpoint); True if any
        changed."""
        changed = False
        for name, allocation in list(self.sites.items()):
            endpoint = endpoints.get(allocation.public_key)
            if endpoint is not None and endpoint != allocation.endpoint:
                self.sites[name] = replace(allocation, endpoint=endpoint)
                changed = True
        return changed

    def _free_address(self) -> IPv4Address:
        taken = {allocation.address for allocation in self.sites.values()}
        for address in self.subnet.hosts():
            if address != self.node_address and address not in taken:
                return address
        raise RegistrationRefused(503, f"no tunnel address left in {self.subnet}")


def _why(entry: object) -> str:
    return "no longer in the policy" if entry is None else "its secret changed"
