"""What the gateway and the sidecar share about sites: where each site's tunnel ends, whether it
is online, and which tunnel port carries which target.

The sidecar owns this knowledge and writes it to `<state_dir>/sites.json` (atomically, only when
it changes); the gateway polls the file's metadata with its policy and swaps in a new
`SiteTable`, checked against its own policy (`SiteTable.for_policy`). A request pays one dict
lookup; nothing on the request path talks to the sidecar.
"""

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

from core.balance import TargetKey, target_key
from core.policy.compiled import Policy
from core.policy.model import PolicyFile, Resource, Target

type Protocol = Literal["tcp", "udp"]
type ForwardKey = tuple[Protocol, str, int]  # protocol, target host, target port

# The site agent and the sidecar answer this TCP port on their tunnel addresses: a connection
# that opens proves the tunnel and the process at its far end are alive.
PROBE_PORT = 51820
SITE_API_PREFIX = "/.warren/sites/"
REGISTER_PATH = SITE_API_PREFIX + "register"
TUNNEL_PATH = SITE_API_PREFIX + "tunnel"  # the TCP/443 fallback's WebSocket


class Forward(NamedTuple):
    protocol: Protocol
    host: str  # where the site agent connects, as the policy's target says
    target_port: int
    port: int  # what the node connects to on the site's tunnel address

    @property
    def key(self) -> ForwardKey:
        return (self.protocol, self.host, self.target_port)

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


def new_site_secret() -> tuple[str, str]:
    """A site's registration secret, and the SHA-256 that policy.yaml keeps of it (`sites.NAME.
    secret_sha256`, what the sidecar checks a registration against)."""
    secret = secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def forward_protocol(resource: Resource) -> Protocol:
    return "udp" if resource.protocol == "udp" else "tcp"


def wanted_forwards(model: PolicyFile, site: str) -> frozenset[ForwardKey]:
    """What the policy asks `site` to carry: every target on it, by protocol."""
    return frozenset(
        (forward_protocol(resource), target.host, target.port)
        for resource in model.resources.values()
        for target in resource.every_target()
        if target.site == site
    )


@dataclass(frozen=True, slots=True)
class SiteRoute:
    address: str
    online: bool
    ports: Mapping[ForwardKey, int] = field(default_factory=dict)
    # The policy's hash of the secret the site registered under; None from a sidecar that
    # predates the field (sites.json version 1 without it).
    secret_sha256: str | None = None


class SiteState(NamedTuple):
    """What the sidecar publishes about one site."""

    address: str
    online: bool
    forwards: Iterable[Forward]
    secret_sha256: str | None = None


class SiteTable:
    """The gateway's read-only view of sites.json."""

    __slots__ = ("_sites",)

    def __init__(self, sites: Mapping[str, SiteRoute] | None = None) -> None:
        self._sites: Mapping[str, SiteRoute] = dict(sites or {})

    def __bool__(self) -> bool:
        return bool(self._sites)

    def get(self, site: str) -> SiteRoute | None:
        return self._sites.get(site)

    def for_policy(self, model: PolicyFile) -> "SiteTable":
        """The table as a gateway running this policy may use it: a site the policy no longer
        has, or whose secret changed since it registered, is offline here whatever the sidecar
        says. The gateway stops routing the moment its own policy says so; the sidecar removes
        such a peer only later, so nothing is sent into a tunnel that is about to go.

        Computed once per policy and per sites.json, so that `resolve` stays one dict lookup."""
        return SiteTable(
            {
                name: route if route.online and _current(route, model, name) else _offline(route)
                for name, route in self._sites.items()
            }
        )

    def resolve(self, target: Target, protocol: Protocol = "tcp") -> tuple[str, int] | None:
        """Where to connect for `target`: itself, or its site's tunnel address and port; None
        while the site is offline or does not carry the target yet."""
        if target.site is None:
            return target.host, target.port
        route = self._sites.get(target.site)
        if route is None or not route.online:
            return None
        port = route.ports.get((protocol, target.host, target.port))
        return None if port is None else (route.address, port)

    def unroutable(self, policy: Policy) -> frozenset[TargetKey]:
        """Targets of the policy that cannot be reached now: their site is offline, unknown, or
        registered under another secret than this policy's. (A target used over TCP and UDP
        counts as reachable if either way is; the connection that cannot be carried is refused
        when it resolves.)"""
        table = self.for_policy(policy.model)
        reachable: dict[TargetKey, bool] = {}
        for resource in policy.resources.values():
            protocol = forward_protocol(resource.model)
            for target in resource.every_target:
                if target.site is not None:
                    key = target_key(target)
                    found = table.resolve(target, protocol) is not None
                    reachable[key] = reachable.get(key, False) or found
        return frozenset(key for key, found in reachable.items() if not found)

    def routable_sites(self) -> frozenset[str]:
        return frozenset(name for name, route in self._sites.items() if route.online)


def _current(route: SiteRoute, model: PolicyFile, name: str) -> bool:
    entry = model.sites.get(name)
    if entry is None:
        return False
    # No hash: a sidecar older than the field, which still removes the peer itself at reload;
    # its word stands, as it did before.
    return route.secret_sha256 is None or route.secret_sha256 == entry.secret_sha256


def _offline(route: SiteRoute) -> SiteRoute:
    return route if not route.online else replace(route, online=False)


def sites_file(state_dir: Path) -> Path:
    return state_dir / "sites.json"


def sidecar_socket(state_dir: Path) -> Path:
    return state_dir / "sidecar.sock"


def encode_sites(sites: Mapping[str, SiteState | tuple[str, bool, Iterable[Forward]]]) -> bytes:
    """sites.json: for each site its tunnel address, whether it is online, its forwards, and
    the hash of the secret it registered under (see docs/tunnels.md)."""
    document = {
        "version": 1,
        "sites": {name: _encode_site(SiteState(*entry)) for name, entry in sorted(sites.items())},
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def _encode_site(site: SiteState) -> dict[str, object]:
    entry: dict[str, object] = {
        "address": site.address,
        "online": site.online,
        "forwards": [forward.as_dict() for forward in sorted(site.forwards)],
    }
    if site.secret_sha256 is not None:
        entry["secret_sha256"] = site.secret_sha256
    return entry


def decode_sites(data: bytes) -> SiteTable:
    """Raises ValueError for anything that is not a sites.json this version wrote."""
    try:
        document: Any = json.loads(data)
        if document.get("version") != 1:
            raise ValueError(f"unknown sites.json version {document.get('version')!r}")
        routes = {
            str(name): SiteRoute(
                address=str(entry["address"]),
                online=entry["online"] is True,
                ports={
                    (parse_protocol(f["protocol"]), str(f["host"]), int(f["target_port"])): int(
                        f["port"]
                    )
                    for f in entry["forwards"]
                },
                secret_sha256=_secret_hash(entry.get("secret_sha256")),
            )
            for name, entry in document["sites"].items()
        }
    except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a sites.json: {error!r}") from None
    return SiteTable(routes)


def _secret_hash(value: object) -> str | None:
    if value is None or (isinstance(value, str) and _is_sha256(value)):
        return value
    raise ValueError(f"not a sites.json: secret_sha256 {value!r} is not 64 hex digits")


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def parse_protocol(value: object) -> Protocol:
    if value == "tcp" or value == "udp":
        return value
    raise ValueError(f"{value!r} is not tcp or udp")


def load_sites(path: Path) -> SiteTable:
    return decode_sites(path.read_bytes())


def format_sites(sites: list[dict[str, Any]]) -> str:
    """`warren status`'s table of sites, from the sidecar's status answer."""
    rows = [
        ["site", "online", "tunnel address", "last handshake", "in", "out", "endpoint", "transport"]
    ]
    for site in sites:
        rows.append(
            [
                str(site.get("site")),
                "yes" if site.get("online") else "NO",
                str(site.get("address") or "not registered"),
                _age(site.get("handshake_age")),
                _bytes(int(site.get("rx_bytes") or 0)),
                _bytes(int(site.get("tx_bytes") or 0)),
                str(site.get("endpoint") or "-"),
                _transport(site.get("transport")),
            ]
        )
    if len(rows) == 1:
        return "no sites in the policy"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _transport(value: object) -> str:
    """How the site's WireGuard packets reach the node: UDP, or the TCP/443 fallback's stream
    through the gateway (docs/tunnels.md). A sidecar older than the field says nothing."""
    return {"udp": "udp", "tcp": "tcp/443"}.get(str(value), "-")


def _age(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
