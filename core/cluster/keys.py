"""Each node's signing keys, trusted by every node: a node publishes the PUBLIC half of its keys
(`KeyRing.jwks()`) at `warren:cluster:keys:<name>` with every heartbeat, and every process that
verifies tokens (gateway, portal) keeps a mirror of all nodes' published keys in memory, so a
token minted on node A verifies on node B with a dictionary lookup.

Private keys never leave their node. Shipping them through storage would let anyone who reads
Redis mint sessions for every node, and a node taken out with `warren nodes remove` would keep
minting with the others' keys; with public keys only, removing a node (which deletes its
published keys and marks its name, core.cluster.registry) ends trust in what it signed, and each
node rotates its own keys on its own (`warren keys rotate` on that node). What storage can still
do is lie about public keys: whoever may write to Redis is trusted as much as a node (give each
node its own Redis ACL user, and drop a removed node's).

Published keys expire one session lifetime (`session.ttl`) after the node's last heartbeat:
sessions a dead node signed keep working on the others while they live; share links it made end
then too.

The mirror is refreshed every heartbeat, at once on a message on `warren:cluster:changes`, and
when a token names a kid it does not know (at most once a second). While storage is down it
keeps what it last read.
"""

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from core.auth.signing import jwk_of
from core.cluster.registry import (
    CHANGES,
    HEARTBEAT_SECONDS,
    PRUNE_AFTER_SECONDS,
    index_key,
    indexed,
    keys_key,
    removed_key,
    removed_names,
)
from core.storage import redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.auth.signing import KeyRing, SigningKey
    from core.settings import Settings

log = logging.getLogger("warren.cluster")

REFRESH_AT_MOST_SECONDS = 1.0  # an unknown kid asks storage again no more often than this

# KEYS: keys:<name>, removed:<name>, index:keys; ARGV: JWKS JSON, ttl in ms, channel, message,
# now, name, prune before. A removed node's keys are never written back, even by a heartbeat
# racing the removal.
_PUBLISH_KEYS = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local before = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[7])
if before ~= ARGV[1] then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""


def _canonical(jwks: dict[str, Any]) -> str:
    return json.dumps(jwks, sort_keys=True, separators=(",", ":"))


async def publish_keys(redis: "Redis", name: str, jwks: dict[str, Any], keep_for: float) -> bool:
    """Publish `name`'s public keys for `keep_for` seconds, announcing a change; False when the
    name was removed from the cluster (nothing is written)."""
    now = time.time()
    written = await cast(
        Awaitable[int],
        redis.eval(
            _PUBLISH_KEYS,
            3,
            keys_key(name),
            removed_key(name),
            index_key("keys"),
            _canonical(jwks),
            max(1, int(keep_for * 1000)),
            CHANGES,
            f"keys:{name}",
            repr(now),
            name,
            repr(now - keep_for - PRUNE_AFTER_SECONDS),
        ),
    )
    return bool(written)


def public_keys_of(jwks: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a published JWKS by kid; anything else in it is ignored."""
    found: dict[str, Ed25519PublicKey] = {}
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if (
            not isinstance(entry, dict)
            or entry.get("kty") != "OKP"
            or entry.get("crv") != "Ed25519"
        ):
            continue
        if entry.get("d") is not None:
            continue  # a private key has no business here: never trust what published it so
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("alg", "EdDSA") != "EdDSA":
            continue
        try:
            key = OKPAlgorithm.from_jwk(entry)
        except (ValueError, TypeError, KeyError) as error:
            log.warning("published key %s unreadable, ignored: %s", kid[:40], error)
            continue
        if isinstance(key, Ed25519PublicKey):
            found[kid] = key
    return found


def _about_keys(data: Any) -> bool:
    text = data.decode() if isinstance(data, bytes) else str(data)
    return text.startswith(("keys:", "removed:", "readmitted:"))


class PublishedKeys:
    """The mirror: every other live, not removed node's published keys (core.auth.signing's
    KeyRing asks it for kids it does not hold itself)."""

    def __init__(self, storage: str, own_name: str) -> None:
        self._redis = redis_client(storage, decode_responses=True, health_check_interval=5)
        self.own_name = own_name
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._entries: list[dict[str, Any]] = []
        self._nodes: dict[str, str] = {}  # kid -> the node that published it
        self.generation = 0  # moves whenever a kid stops being trusted
        self._refreshed = -math.inf  # monotonic
        self._soon: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None:
            self._refresh_soon()
        return key

    def node_of(self, kid: str) -> str | None:
        return self._nodes.get(kid)

    def jwks_entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    async def start(self) -> None:
        """Read the keys once (so tokens from other nodes verify from the first request), then
        follow changes. Storage down: starts empty and keeps trying."""
        with contextlib.suppress(Exception):
            await self.refresh()
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def refresh(self) -> None:
        self._refreshed = time.monotonic()
        removed = await removed_names(self._redis)
        published = await indexed(self._redis, "keys", keys_key)
        self._replace(
            {
                name: value
                for name, value in published.items()
                if name != self.own_name and name not in removed
            }
        )

    def _replace(self, published: dict[str, str | None]) -> None:
        keys: dict[str, Ed25519PublicKey] = {}
        entries: dict[str, dict[str, Any]] = {}
        nodes: dict[str, str] = {}
        clashing: set[str] = set()
        for name, value in sorted(published.items()):
            if value is None:
                continue  # expired between the scan and the read
            try:
                jwks = json.loads(value)
            except ValueError:
                log.warning("node %s published unreadable keys, ignored", name)
                continue
            for kid, key in public_keys_of(jwks).items():
                if kid in nodes:
                    clashing.add(kid)  # two nodes claim one kid: trust neither
                keys[kid], nodes[kid] = key, name
                entries[kid] = jwk_of(kid, key)
        for kid in clashing:
            log.error("key %s is published by more than one node: trusted from none", kid[:40])
            del keys[kid], nodes[kid], entries[kid]
        if set(self._keys) - set(keys):
            self.generation += 1  # a removed or expired node: cached verifications must go
        self._keys, self._nodes, self._entries = keys, nodes, list(entries.values())

    async def look_again(self) -> bool:
        """For a token whose kid no key here has: read storage again now, unless that was done
        less than REFRESH_AT_MOST_SECONDS ago (a flood of made-up kids costs one read a second).
        True when it looked."""
        if time.monotonic() - self._refreshed < REFRESH_AT_MOST_SECONDS:
            return False
        try:
            await self.refresh()
        except Exception as error:  # storage down: keep what we have
            log.debug("published keys not refreshed: %s", error)
        return True

    def _refresh_soon(self) -> None:
        if self._soon is not None and not self._soon.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a command, not a server: nothing to refresh for
        wait = self._refreshed + REFRESH_AT_MOST_SECONDS - time.monotonic()
        self._soon = loop.create_task(self._refresh_after(max(0.0, wait)))

    async def _refresh_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        try:
            await self.refresh()
        except Exception as error:  # storage down: keep what we have
            log.debug("published keys not refreshed: %s", error)

    async def _follow(self) -> None:
        """Refresh on every change message, and at least every heartbeat (a dead node's keys
        expire, a message may be lost while the subscription is down)."""
        failures = 0
        while True:
            try:
                async with self._redis.pubsub() as channel:
                    await channel.subscribe(CHANGES)
                    failures = 0
                    await self.refresh()  # whatever changed while not subscribed
                    while True:
                        message = await channel.get_message(
                            ignore_subscribe_messages=True, timeout=HEARTBEAT_SECONDS
                        )
                        if message is None or _about_keys(message.get("data")):
                            await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                if failures == 1:
                    log.warning("published keys: storage unreachable (%s); keeping the last", error)
                await asyncio.sleep(min(10.0, 0.5 * 2**failures) * random.uniform(0.5, 1.0))  # noqa: S311

    async def close(self) -> None:
        for task in (self._follower, self._soon):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._follower = self._soon = None
        await self._redis.aclose()


def announce_new_key(settings: "Settings", ring: "KeyRing", key: "SigningKey") -> str | None:
    """For `warren keys rotate`, before the new key is written where this node's portal signs
    with it: publish it, so every node already knows it when the first token it signed arrives.
    None when published; otherwise why not (the heartbeat publishes it once storage answers)."""
    from redis.exceptions import RedisError

    jwks = {"keys": [jwk_of(key.kid, key.public), *ring.own_jwks()["keys"]]}

    async def run() -> bool:
        redis = redis_client(settings.storage, socket_connect_timeout=3, socket_timeout=10)
        try:
            keep = settings.session.ttl.total_seconds()
            return await publish_keys(redis, settings.node_name, jwks, keep)
        finally:
            await redis.aclose()

    try:
        published = asyncio.run(run())
    except (RedisError, OSError) as error:
        return f"storage did not answer ({error}): other nodes learn the key at the next heartbeat"
    if not published:
        return f"node {settings.node_name} was removed from the cluster: no node trusts its keys"
    return None
