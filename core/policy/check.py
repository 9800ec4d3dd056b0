"""Checks that span several keys of policy.yaml, each reported at the key to fix."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.policy.model import GEO_CONDITIONS, PolicyFile, Rule
from core.problems import Loc, Problem
from core.ratelimit.check import rate_limit_problems

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this node can evaluate; a rule it cannot evaluate is refused, never ignored."""

    country_db: bool = False
    asn_db: bool = False
    sign_in: bool = False  # requests can carry a signed-in user (rate limits per: user)


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
    )


def check_policy(model: PolicyFile, capabilities: Capabilities) -> list[Problem]:
    return [
        *_duplicate_hosts(model),
        *_duplicate_ports(model),
        *_unknown_sites(model),
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


def _unknown_sites(model: PolicyFile) -> Iterator[Problem]:
    for name, resource in model.resources.items():
        for index, target in enumerate(resource.targets):
            if target.site is not None and target.site not in model.sites:
                yield Problem(
                    ("resources", name, "targets", index, "site"),
                    f"no site named {target.site!r} under sites",
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
