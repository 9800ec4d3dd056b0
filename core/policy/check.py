"""Checks that span several keys of policy.yaml, each reported at the key to fix."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.cloudflare import KNOWN, node_ranges
from core.ipsets import IPNetwork
from core.policy.limitchecks import rate_limit_problems
from core.policy.model import GEO_CONDITIONS, PolicyFile, Rule, Target
from core.policy.routes import RouteTable
from core.problems import Loc, Problem

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass(frozen=True, slots=True)
class NodePort:
    """A port one of the node's own listeners holds (warren.yaml), which no raw resource may."""

    protocol: str  # "tcp" or "udp"
    host: str  # "0.0.0.0" or "::" for every address
    port: int
    setting: str  # the warren.yaml key that asks for it


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this node can evaluate, and where it listens; a rule it cannot evaluate is refused,
    never ignored, and so is a raw resource on a port the node already holds."""

    country_db: bool = False
    asn_db: bool = False
    sign_in: bool = False  # requests can carry a signed-in user (rate limits per: user)
    raw_host: str = "0.0.0.0"  # where raw resources listen: `listen`'s host
    ports: tuple[NodePort, ...] = ()
    cloudflare: tuple[IPNetwork, ...] = KNOWN  # `trusted_proxies: [cloudflare]` on this node


def node_capabilities(settings: "Settings | None") -> Capabilities:
    """What a node with these settings can evaluate: country conditions with a country database
    configured, asn conditions with an ASN database, per-user rate limits with a sign-in portal.
    Whether the files open is checked where they are opened (the gateway's start, `warren check
    warren.yaml`)."""
    if settings is None:
        return Capabilities()
    return Capabilities(
        country_db=bool(settings.geoip.country_db),
        asn_db=bool(settings.geoip.asn_db),
        sign_in=settings.public_url is not None,
        raw_host=settings.listen.host,
        ports=_node_ports(settings),
        cloudflare=node_ranges(settings.state_dir),
    )


def _node_ports(settings: "Settings") -> tuple[NodePort, ...]:
    def tcp(setting: str, host: str, port: int) -> NodePort:
        return NodePort("tcp", host, port, setting)

    ports = [
        tcp("listen", settings.listen.host, settings.listen.port),
        tcp("portal.listen", settings.portal.listen.host, settings.portal.listen.port),
        tcp("wireguard.api", settings.wireguard.api.host, settings.wireguard.api.port),
        # WireGuard binds its port on every address.
        NodePort("udp", "0.0.0.0", settings.wireguard.listen_port, "wireguard.listen_port"),
    ]
    if settings.http_listen is not None:
        ports.append(tcp("http_listen", settings.http_listen.host, settings.http_listen.port))
    return tuple(ports)


def check_policy(model: PolicyFile, capabilities: Capabilities) -> list[Problem]:
    return [
        *_duplicate_hosts(model),
        *_duplicate_ports(model),
        *_node_port_collisions(model, capabilities),
        *_unknown_sites(model),
        *_shadowed_routes(model),
        *_raw_resources(model),
        *_geo_conditions(model, capabilities),
        *rate_limit_problems(model),
    ]


def _duplicate_hosts(model: PolicyFile) -> Iterator[Problem]:
    owner: dict[str, str] = {}
    for name, resource in model.resources.items():
        for index, host in enumerate(resource.host or ()):
            if host in owner:
                yield Problem(
                    ("resources", name, "host", index),
                    f"{host} is already the host of resource {owner[host]!r}",
                )
            owner.setdefault(host, name)


def _duplicate_ports(model: PolicyFile) -> Iterator[Problem]:
    owner: dict[tuple[str, int], str] = {}
    for name, resource in model.resources.items():
        if resource.port is None:
            continue
        key = (resource.protocol, resource.port)
        if key in owner:
            yield Problem(
                ("resources", name, "port"),
                f"{resource.protocol} port {resource.port} is already used by {owner[key]!r}",
            )
        owner.setdefault(key, name)


def _node_port_collisions(model: PolicyFile, capabilities: Capabilities) -> Iterator[Problem]:
    for name, resource in model.resources.items():
        for held in capabilities.ports:
            if (resource.protocol, resource.port) == (held.protocol, held.port) and _overlap(
                capabilities.raw_host, held.host
            ):
                yield Problem(
                    ("resources", name, "port"),
                    f"{held.protocol} port {held.port} is the node's own ({held.setting} in "
                    "warren.yaml); a raw resource needs a port of its own",
                )


def _overlap(host: str, other: str) -> bool:
    every = ("0.0.0.0", "::", "")
    return host == other or host in every or other in every


def _unknown_sites(model: PolicyFile) -> Iterator[Problem]:
    for name, resource in model.resources.items():
        lists: list[tuple[Loc, tuple[Target, ...]]] = [(("targets",), resource.targets)]
        lists += [(("routes", i, "targets"), r.targets) for i, r in enumerate(resource.routes)]
        for loc, targets in lists:
            for index, target in enumerate(targets):
                if target.site is not None and target.site not in model.sites:
                    yield Problem(
                        ("resources", name, *loc, index, "site"),
                        f"no site named {target.site!r} under sites",
                    )


def _shadowed_routes(model: PolicyFile) -> Iterator[Problem]:
    """A route the table would never choose (core.policy.routes) is a mistake, not a fallback."""
    for name, resource in model.resources.items():
        for route, winners in RouteTable(name, resource.routes).shadowed():
            named = " and ".join(f"routes[{w.index}] ({w.pattern.source})" for w in winners)
            yield Problem(
                ("resources", name, "routes", route.index, "path"),
                f"{route.pattern.source} can never match: every path it matches goes to "
                f"{named} first (the most specific route wins)",
            )


def _raw_resources(model: PolicyFile) -> Iterator[Problem]:
    """A tcp/udp connection has no path, no method, and no way to sign in (core.connections)."""
    for name, resource in model.resources.items():
        kind = resource.protocol
        if kind == "http":
            continue
        if resource.auth is not None and resource.auth != "public":
            yield Problem(
                ("resources", name, "auth"),
                f"a {kind} connection cannot sign in: use auth: public, or allow rules "
                "for the networks that may connect",
            )
        if resource.health is not None:
            yield Problem(
                ("resources", name, "health"),
                f"health checks speak HTTP; a {kind} resource cannot have one",
            )
        for index, rule in enumerate(resource.rules):
            for condition in ("path", "method"):
                if getattr(rule, condition) is not None:
                    yield Problem(
                        ("resources", name, "rules", index, condition),
                        f"a {kind} connection has no {condition}; this rule could never hold",
                    )


def _all_rules(model: PolicyFile) -> Iterator[tuple[Loc, Rule]]:
    for index, rule in enumerate(model.rules):
        yield ("rules", index), rule
    for name, resource in model.resources.items():
        for index, rule in enumerate(resource.rules):
            yield ("resources", name, "rules", index), rule


def _geo_conditions(model: PolicyFile, capabilities: Capabilities) -> Iterator[Problem]:
    available = {
        "country": capabilities.country_db,
        "country_not": capabilities.country_db,
        "region": capabilities.country_db,  # decided on the country (core.regions)
        "region_not": capabilities.country_db,
        "asn": capabilities.asn_db,
    }
    for loc, rule in _all_rules(model):
        for condition in GEO_CONDITIONS:
            if getattr(rule, condition) is not None and not available[condition]:
                key = "asn_db" if condition == "asn" else "country_db"
                yield Problem(
                    (*loc, condition),
                    f"{condition} conditions need {'an ASN' if key == 'asn_db' else 'a country'}"
                    f" database: configure geoip.{key} in warren.yaml (`warren geodb fetch` "
                    "downloads one) and check with --config warren.yaml",
                )
