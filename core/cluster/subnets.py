"""Tunnel addressing across nodes: each node hands out addresses from its own `wireguard.subnet`,
and no two live nodes' subnets may overlap.

Why per-node subnets and not allocation in storage: a site agent keeps one interface per node,
each with the address that node gave it and a route to that node's tunnel address. With
disjoint subnets those can never collide on the site, each node allocates alone (no shared
counter to lose when storage is down, no address moving when it returns), and a node's
addresses survive a storage restart as they survive a node restart. The price is one line per
node in warren.yaml, checked here: the sidecar refuses to start, and `warren check` fails, when
its subnet overlaps a live node's (from the nodes' heartbeats, core.cluster.registry).
"""

import asyncio
from collections.abc import Iterable
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from core.cluster.records import NodeRecord

if TYPE_CHECKING:
    from core.settings import Settings


def overlap(own_name: str, own_subnet: IPv4Network, records: Iterable[NodeRecord]) -> str | None:
    """The one-line reason `own_subnet` cannot be used next to these nodes, or None."""
    for record in records:
        text = record.wireguard.subnet
        if record.name == own_name or text is None:
            continue  # this node's own earlier heartbeat, or a node without a sidecar yet
        try:
            theirs = IPv4Network(text)
        except ValueError:
            continue  # a record this version cannot read says nothing about addresses
        if own_subnet.overlaps(theirs):
            return (
                f"wireguard.subnet {own_subnet} overlaps node {record.name}'s {theirs}: "
                "every node sharing storage needs a subnet of its own (e.g. 100.89.1.0/24, "
                "100.89.2.0/24), or sites' tunnels to the two would collide"
            )
    return None


async def subnet_problem(storage_url: str, own_name: str, own_subnet: IPv4Network) -> str | None:
    """`overlap` against the live nodes in shared storage; None for `memory://` (one node).
    Raises OSError or redis' errors when storage cannot be read: the caller decides what an
    unknown answer means."""
    from core.cluster.registry import live_nodes
    from core.storage import is_shared, redis_client

    if not is_shared(storage_url):
        return None
    redis = redis_client(storage_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return overlap(own_name, own_subnet, await live_nodes(redis))
    finally:
        await redis.aclose()


def check_subnet(settings: "Settings", source: Path) -> str | None:
    """`warren check`'s part: raises ConfigError when the subnet overlaps a live node's; a
    warning when storage could not be asked (nothing is known then, either way)."""
    from core.problems import ConfigError, Problem
    from core.storage import redact

    subnet = settings.wireguard.subnet
    try:
        problem = asyncio.run(subnet_problem(settings.storage, settings.node_name, subnet))
    except Exception as error:  # redis' errors are not OSErrors: any failure to read counts
        return (
            f"{source}: wireguard.subnet not checked against the other nodes: "
            f"{redact(settings.storage)} did not answer ({error!r})"
        )
    if problem is not None:
        raise ConfigError([Problem(("wireguard", "subnet"), problem, source)])
    return None
