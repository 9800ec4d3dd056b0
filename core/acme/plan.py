"""Which certificates the node wants from ACME, and when each is due.

One certificate per name: every http resource host in policy.yaml and the portal's host
(`public_url`). A name fails, renews and is served on its own, and adding a host orders one new
certificate instead of reissuing the others. A wildcard is only obtainable through DNS-01 (RFC
8555 §7.1.3 lets a CA refuse wildcards otherwise, and Let's Encrypt does); a name that a wanted
wildcard covers needs no certificate of its own.
"""

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.certs import name_covers
from core.policy.model import PolicyFile

type Challenge = Literal["http-01", "dns-01"]

DEFAULT_RENEW_BEFORE = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Wanted:
    names: tuple[str, ...]
    challenge: Challenge

    @property
    def file_name(self) -> str:
        return file_name(self.names[0])


@dataclass(frozen=True, slots=True)
class Plan:
    wanted: tuple[Wanted, ...]
    skipped: tuple[tuple[str, str], ...]  # a name, and why no certificate is ordered for it


def file_name(name: str) -> str:
    """`*` is a poor file name character: `*.example.com` is `_wildcard.example.com.pem`."""
    return ("_wildcard." + name[2:] if name.startswith("*.") else name) + ".pem"


def policy_hosts(policy: PolicyFile) -> list[str]:
    return [
        host
        for resource in policy.resources.values()
        if resource.protocol == "http"
        for host in resource.host or ()
    ]


def plan(
    hosts: Iterable[str],
    portal_host: str | None,
    challenge: Challenge,
    has_dns: bool,
    held: Callable[[str], bool] = lambda _: False,
) -> Plan:
    """`held`: whether a certificate the admin manages (`certs:`) is for a name already; such a
    name is served from it and ordered from no CA."""
    names = list(dict.fromkeys([*hosts, *([portal_host] if portal_host else [])]))
    skipped = [(name, "served from a certs: file of warren.yaml") for name in names if held(name)]
    names = [name for name in names if not held(name)]
    wildcards = [name for name in names if name.startswith("*.")]
    if not has_dns:
        skipped += [(name, "a wildcard needs DNS-01: set acme.dns") for name in wildcards]
        wildcards = []
    wanted: list[Wanted] = []
    for name in names:
        if _is_address(name):
            skipped.append((name, "an IP address, not a DNS name"))
        elif name.startswith("*."):
            if name in wildcards:
                wanted.append(Wanted((name,), "dns-01"))
        elif not any(name_covers(wildcard, name) for wildcard in wildcards):
            wanted.append(Wanted((name,), challenge))
    return Plan(tuple(wanted), tuple(skipped))


def renewal_time(
    not_before: datetime, not_after: datetime, renew_before: timedelta | None
) -> datetime:
    """When a certificate is due: `renew_before` its end, or by default 30 days before it, or
    after two thirds of its life when it lives less than 90 days (Let's Encrypt's short-lived
    certificates; what its own clients are advised to do)."""
    if renew_before is None:
        renew_before = min(DEFAULT_RENEW_BEFORE, (not_after - not_before) / 3)
    return not_after - renew_before


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
