"""Whether this node should be sent users: what `/.warren/readyz` answers a DNS steering service
or a load balancer (`/.warren/healthz` only says the gateway serves at all: addons.probes).

Ready means every check holds:

- policy: a policy is loaded. A refused change does not count against it: the node serves the
  last good copy, as it says in `warren status`.
- storage: the shared storage answers a ping, or, when it does not, the node runs in its
  configured fail mode (rate limits decide by `on_storage_error`, sign-in from what it verified
  and mirrored). An outage of the one store every node shares is the same on every node, so it
  never takes a node out of DNS by itself: that would take them all out at once.
- tunnel: the WireGuard interface exists and is up in this network namespace (the sidecar's,
  which the gateway shares). Skipped when the policy has no sites: the node uses no tunnel.
- sites: at least one of the policy's sites is online through this node. A node whose every
  site tunnel is down can serve nobody by itself; other nodes carry its requests (core.cluster
  .relay) while DNS moves users away. One site down while others are up stays ready: users of
  that site are relayed, users of the others are served here.

The answer names no address, site, key or error text: it is public, on every host.
"""

import asyncio
import fcntl
import socket
import struct
from collections.abc import Awaitable, Callable, Collection
from typing import NamedTuple

OK = "ok"
SKIPPED = "skipped"

_SIOCGIFFLAGS = 0x8913  # <linux/sockios.h>
_IFF_UP = 0x1  # <linux/if.h>


class Readiness(NamedTuple):
    ready: bool
    checks: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {"status": "ok" if self.ready else "not ready", "checks": self.checks}


def alive() -> Readiness:
    return Readiness(True, {"gateway": OK})


def interface_up(name: str) -> bool:
    """Whether the interface exists and is administratively up, in the caller's network
    namespace (an ioctl on a socket, not /sys, which shows the namespace it was mounted in)."""
    request = struct.pack("16sH14x", name.encode()[:15], 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, request)
    except OSError:  # ENODEV: no such interface
        return False
    (flags,) = struct.unpack_from("H", answer, 16)
    return bool(flags & _IFF_UP)


def tunnel_check(interface: str, uses_sites: bool) -> str:
    if not uses_sites:
        return SKIPPED
    return OK if interface_up(interface) else "interface down"


def sites_check(policy_sites: Collection[str], online: Collection[str]) -> str:
    if not policy_sites:
        return SKIPPED
    up = sum(1 for site in policy_sites if site in online)
    return OK if up else f"none of {len(policy_sites)} online"


type Ping = Callable[[], Awaitable[bool]]


async def storage_check(shared: bool, ping: Ping, timeout: float = 1.0) -> str:
    if not shared:
        return SKIPPED  # memory:// and the node's own SQLite: nothing to reach
    try:
        answered = await asyncio.wait_for(ping(), timeout)
    except Exception:  # any failure means the same: not answering now
        answered = False
    return OK if answered else "unreachable: serving in its fail mode"


def assess(*, policy: str, storage: str, tunnel: str, sites: str) -> Readiness:
    checks = {"policy": policy, "storage": storage, "tunnel": tunnel, "sites": sites}
    # Storage counts as ready in its fail mode (see above); the others must hold or be skipped.
    ready = all(checks[name] in (OK, SKIPPED) for name in ("policy", "tunnel", "sites"))
    return Readiness(ready, checks)
