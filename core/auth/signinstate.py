"""The sign-in state every Warren process of a node (and every node sharing Redis) must agree on:
revoked sessions, one-time codes, used TOTP codes, revoked share links, apps' tokens.

`storage: redis://...` keeps it in Redis (redis-py's asyncio client). Otherwise it lives in one
SQLite file in state_dir (WAL mode), which the gateway, the portal and the command line of one
node share; `memory://` counters (rate limits, brute-force regulation) stay per process, but
sign-in state cannot: the portal, the gateway and `warren share revoke` are separate processes.

The gateway asks about revocations (and apps' tokens) on every request. With SQLite it answers
from a copy in memory, which it reloads whenever a change counter has moved: an 8-byte file
beside the database that every writer of a revocation increments after committing, and that
readers map into memory, so looking costs no system call. A reader takes the counter before
reloading, so a revocation committed meanwhile moves the counter again and is loaded by the next
request.

With Redis the gateway answers from a copy kept current by pub/sub (`RedisKV`), which is also
what it decides by while Redis is down (`session.on_storage_error`).
"""

import asyncio
import contextlib
import fcntl
import json
import logging
import mmap
import os
import random
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from core.settings import SessionFailMode
from core.storage import is_shared, redact, redis_client
from core.storagefailure import REDIS_FAILURES, StorageUnavailable, reason

log = logging.getLogger("warren.auth")

PREFIX = "warren:"
_GLOB_SPECIAL = re.compile(r"[*?\[\]\\]")  # matched literally in a SCAN pattern
# Keys read on every request, served from memory: revocations, and the records of app tokens
# (core.auth.apptokens.PREFIX).
MIRRORED = ("revoked:", "apptoken:")


def _all_mirrored(keys: Sequence[str]) -> bool:
    # A loop, not all() over a generator: this runs for every signed-in request.
    for key in keys:
        if not key.startswith(MIRRORED):
            return False
    return True


class KeyValue(Protocol):
    async def get_many(self, keys: Sequence[str]) -> dict[str, str]: ...

    async def put(self, key: str, value: str, ttl: float) -> None: ...

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Store unless the key is already there; True when this call stored it."""
        ...

    async def take(self, key: str) -> str | None:
        """Read and delete in one step: of two callers, only one gets the value."""
        ...

    async def scan(self, prefix: str) -> dict[str, str]:
        """Every live entry whose key starts with `prefix` (for listings, not requests)."""
        ...

    async def close(self) -> None: ...


def open_kv(
    storage: str, state_dir: Path, on_storage_error: SessionFailMode = "last_known"
) -> KeyValue:
    if is_shared(storage):
        return RedisKV(storage, on_storage_error)
    return SqliteKV(state_dir / "signin.sqlite3")


class SqliteKV:
    _SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT, expires REAL)"
    _INODE_RECHECK_SECONDS = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counter_path = path.with_suffix(".changes")
        path.parent.mkdir(parents=True, exist_ok=True)
        for made in (path, self.counter_path):
            if not made.exists():
                os.close(os.open(made, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = self._connect()
        self._writes = 0
        self._counter: mmap.mmap | None = None
        self._counter_inode = 0
        self._counter_checked = 0.0
        self._mirror: dict[str, tuple[str, float]] = {}
        self._mirror_version = -1

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(self._SCHEMA)
        return db

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        if _all_mirrored(keys):
            return self.mirrored(keys)
        return self.get_many_now(keys)

    def get_many_now(self, keys: Sequence[str]) -> dict[str, str]:
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(
            f"SELECT key, value FROM kv WHERE key IN ({marks}) AND expires > ?",  # noqa: S608
            (*keys, time.time()),
        ).fetchall()
        return dict(rows)

    def mirrored(self, keys: Sequence[str]) -> dict[str, str]:
        version = self._version()
        if version != self._mirror_version:
            self._mirror = {
                key: (value, expires)
                for prefix in MIRRORED
                for key, value, expires in self._db.execute(
                    "SELECT key, value, expires FROM kv WHERE key >= ? AND key < ? AND expires > ?",
                    (prefix, _after_prefix(prefix), time.time()),
                ).fetchall()
            }
            self._mirror_version = version
        now = time.time()
        found = {}
        for key in keys:
            entry = self._mirror.get(key)
            if entry is not None and entry[1] > now:
                found[key] = entry[0]
        return found

    def _version(self) -> int:
        now = time.monotonic()
        if self._counter is None or now - self._counter_checked > self._INODE_RECHECK_SECONDS:
            self._counter_checked = now
            self._map_counter()
        assert self._counter is not None
        return int.from_bytes(self._counter[:8], "little")

    def _map_counter(self) -> None:
        # Mapped again if the file was replaced (someone cleaned state_dir up).
        with open(self.counter_path, "a+b") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            if self._counter is not None and inode == self._counter_inode:
                return
            if os.fstat(handle.fileno()).st_size < 8:
                _bump(handle)
            self._counter = mmap.mmap(handle.fileno(), 8, access=mmap.ACCESS_READ)
            self._counter_inode = inode
            self._mirror_version = -1

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._write(
            "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value, expires = excluded.expires",
            (key, value, time.time() + ttl),
        )

    async def add(self, key: str, value: str, ttl: float) -> bool:
        now = time.time()
        changed = await self._write(
            "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value, expires = excluded.expires WHERE kv.expires <= ?",
            (key, value, now + ttl, now),
        )
        return changed == 1

    async def take(self, key: str) -> str | None:
        def run() -> str | None:
            db = self._connect()
            try:
                row = db.execute(
                    "DELETE FROM kv WHERE key = ? AND expires > ? RETURNING value",
                    (key, time.time()),
                ).fetchone()
            finally:
                db.close()
            return str(row[0]) if row else None

        return await asyncio.to_thread(run)

    async def scan(self, prefix: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM kv WHERE key >= ? AND key < ? AND expires > ?",
            (prefix, _after_prefix(prefix), time.time()),
        ).fetchall()
        return dict(rows)

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        # Writes may wait on another process's lock; they run in a thread on their own
        # connection so the event loop keeps serving requests meanwhile.
        self._writes += 1
        prune = self._writes % 200 == 1

        mirrored = str(parameters[0]).startswith(MIRRORED)

        def run() -> int:
            db = self._connect()
            try:
                changed = db.execute(sql, parameters).rowcount
                if prune:
                    db.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),))
            finally:
                db.close()
            if mirrored:  # after the commit: whoever sees the new count finds the new row
                with open(self.counter_path, "r+b") as handle:
                    _bump(handle)
            return changed

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        self._db.close()
        if self._counter is not None:
            self._counter.close()


def _after_prefix(prefix: str) -> str:
    """The first key past every key that starts with `prefix`: a range an index can answer."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _bump(handle: BinaryIO) -> None:
    """Add one to the change counter, under a lock so concurrent writers never lose a count."""
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        handle.seek(0)
        current = int.from_bytes(handle.read(8).ljust(8, b"\0"), "little")
        handle.seek(0)
        handle.write((current + 1).to_bytes(8, "little"))
        handle.flush()
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class RedisKV:
    """Redis, shared by every node. Revocations are mirrored in memory too: a writer publishes
    the key it changed, every reader subscribed updates its copy. Until a reader's subscription
    is up it asks Redis on every request instead; a full reload every RESYNC_SECONDS bounds what
    a lost message could ever cost.

    A sign-out counts from the next request on every node, not just eventually: the writer
    waits until every process that received its message (PUBLISH says how many) confirms it has
    applied it, up to ACK_SECONDS. Only then does it return, and the sign-out page is answered.

    While Redis is away (`on_storage_error`, docs/nodes.md "When storage is down"):
    `last_known` answers revocations from the copy last loaded, `deny` raises; either way,
    whatever must reach Redis (writing, taking a code, a process that never loaded a copy)
    raises `StorageUnavailable`. The subscription is retried every RETRY_SECONDS at most, and
    reloads everything when it is back."""

    CHANNEL = PREFIX + "revocations"
    ACKS = PREFIX + "revocations:ack:"  # + a nonce: the list readers confirm a change on
    RESYNC_SECONDS = 30.0
    ACK_SECONDS = 1.0  # the longest a writer waits for readers (the bound: 1 s)
    RETRY_SECONDS = 0.5  # the longest between attempts to subscribe again (well inside 1 s)

    def __init__(self, url: str, on_storage_error: SessionFailMode = "last_known") -> None:
        self.url = redact(url)
        self.on_storage_error = on_storage_error
        # Timeouts, so a Redis that vanishes without a word fails requests instead of hanging
        # them; the socket timeout is above ACK_SECONDS, which a BLPOP blocks for.
        self._redis = redis_client(
            url,
            decode_responses=True,
            health_check_interval=5,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        self._mirror: dict[str, tuple[str, float]] | None = None  # None: never loaded
        self._in_step = False  # subscribed and loaded: the mirror is current
        self._outage: tuple[float, str] | None = None  # since when (monotonic), and why
        self._listener: asyncio.Task[None] | None = None

    @property
    def in_step(self) -> bool:
        """Subscribed and loaded: the copy of revocations is current, not the last known."""
        return self._in_step

    def follow(self) -> None:
        """Start keeping the copy of revocations (in the background; the first revocation
        asked for starts it too). Returns at once, whether or not Redis answers."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._follow())

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        if _all_mirrored(keys):
            self.follow()
            mirror = self._mirror
            if mirror is not None and (self._in_step or self.on_storage_error == "last_known"):
                now = time.time()
                return {
                    key: entry[0]
                    for key in keys
                    if (entry := mirror.get(key)) is not None and entry[1] > now
                }
        with self._reaching():
            values = await self._redis.mget([PREFIX + key for key in keys])
        return {
            key: _text(value) for key, value in zip(keys, values, strict=True) if value is not None
        }

    async def put(self, key: str, value: str, ttl: float) -> None:
        with self._reaching():
            await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)))
            if key.startswith(MIRRORED):
                await self._announce(key)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        with self._reaching():
            stored = await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)), nx=True)
            if stored and key.startswith(MIRRORED):
                await self._announce(key)
        return bool(stored)

    async def take(self, key: str) -> str | None:
        with self._reaching():
            value = await self._redis.getdel(PREFIX + key)
        return None if value is None else _text(value)

    async def scan(self, prefix: str) -> dict[str, str]:
        pattern = PREFIX + _GLOB_SPECIAL.sub(r"\\\g<0>", prefix) + "*"
        found: dict[str, str] = {}
        with self._reaching():
            keys = [key async for key in self._redis.scan_iter(match=pattern, count=500)]
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for key, value in zip(chunk, await self._redis.mget(chunk), strict=True):
                    if value is not None:  # expired between the scan and the read
                        found[_text(key)[len(PREFIX) :]] = _text(value)
        return found

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except REDIS_FAILURES as error:
            raise StorageUnavailable(f"storage {self.url}: {reason(error)}") from error

    async def _announce(self, key: str) -> None:
        """Publish a changed revocation and wait until every reader that got it applied it."""
        ack = f"{self.ACKS}{secrets.token_hex(8)}"
        readers = int(await self._redis.publish(self.CHANNEL, json.dumps({"key": key, "ack": ack})))
        confirmed = 0
        deadline = time.monotonic() + self.ACK_SECONDS
        while confirmed < readers:
            left = deadline - time.monotonic()
            if left < 0.001:  # BLPOP's timeout 0 would mean "for ever"
                break
            if await self._redis.blpop([ack], timeout=left) is None:
                break
            confirmed += 1
        if readers:
            await self._redis.delete(ack)
        if confirmed < readers:
            log.warning(
                "%s: %d of %d processes following revocations confirmed it within %.1fs; "
                "the others apply it when their link to storage lets them",
                key,
                confirmed,
                readers,
                self.ACK_SECONDS,
            )

    async def _follow(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.CHANNEL)
                    await self._resync()  # after subscribing: no change can fall in between
                    self._in_step = True
                    self._back()
                    delay = 0.1
                    resync_at = time.monotonic() + self.RESYNC_SECONDS
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message.get("type") == "message":
                            await self._apply(_text(message["data"]))
                        if time.monotonic() > resync_at:
                            await self._resync()
                            resync_at = time.monotonic() + self.RESYNC_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: keep the last copy, subscribe again soon
                self._in_step = False
                self._lost(error)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311
                delay = min(delay * 2, self.RETRY_SECONDS)

    def _lost(self, error: BaseException) -> None:
        if self._outage is not None:
            return  # logged once per outage
        self._outage = (time.monotonic(), reason(error))
        if self._mirror is None:
            kept = "no revocations were loaded yet, so signed-in requests answer 503"
        elif self.on_storage_error == "last_known":
            kept = (
                f"signed-in requests are decided by the {len(self._mirror)} revocations last "
                "loaded (session.on_storage_error: last_known)"
            )
        else:
            kept = "signed-in requests answer 503 (session.on_storage_error: deny)"
        # Unreachable since this process started: a node started during an outage, which must
        # serve (issue 12); a gateway ends itself on an error logged while it starts.
        level = logging.WARNING if self._mirror is None else logging.ERROR
        log.log(
            level,
            "sign-in state storage %s is unreachable (%s); %s; sign-ins, sign-outs and one-time "
            "codes answer 503 until it is back",
            self.url,
            self._outage[1],
            kept,
        )

    def _back(self) -> None:
        if self._outage is None:
            log.info("following revocations in %s (%d now)", self.url, len(self._mirror or {}))
            return
        started, _why = self._outage
        self._outage = None
        log.warning(
            "sign-in state storage %s answers again after %.1fs; %d revocations reloaded",
            self.url,
            time.monotonic() - started,
            len(self._mirror or {}),
        )

    async def _resync(self) -> None:
        keys = [
            key
            for prefix in MIRRORED
            async for key in self._redis.scan_iter(match=f"{PREFIX}{prefix}*")
        ]
        mirror: dict[str, tuple[str, float]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.get(key)
                    pipe.pttl(key)
                answers = await pipe.execute()
            now = time.time()
            for index, key in enumerate(chunk):
                value, ttl = answers[2 * index], answers[2 * index + 1]
                if value is not None and ttl is not None and int(ttl) > 0:
                    mirror[_text(key)[len(PREFIX) :]] = (_text(value), now + int(ttl) / 1000)
        self._mirror = mirror

    async def _apply(self, data: str) -> None:
        """One change announced: reload that key, then confirm to the writer waiting on it."""
        if data.startswith("{"):
            change = json.loads(data)
            key, ack = str(change["key"]), change.get("ack")
        else:  # a bare key, as writers before the confirmation announced
            key, ack = data, None
        await self._refresh(key)
        if isinstance(ack, str) and ack.startswith(self.ACKS):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(ack, "1")
                pipe.pexpire(ack, 5000)  # a confirmation that came too late is not kept
                await pipe.execute()

    async def _refresh(self, key: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(PREFIX + key)
            pipe.pttl(PREFIX + key)
            value, ttl = await pipe.execute()
        mirror = self._mirror
        if mirror is None:
            return
        if value is not None and ttl is not None and int(ttl) > 0:
            mirror[key] = (_text(value), time.time() + int(ttl) / 1000)
        else:
            mirror.pop(key, None)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
