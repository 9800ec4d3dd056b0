"""The sign-in state every Warren process of a node (and every node sharing Redis) must agree on:
revoked sessions, one-time codes, used TOTP codes, revoked share links.

`storage: redis://...` keeps it in Redis (redis-py's asyncio client). Otherwise it lives in one
SQLite file in state_dir (WAL mode), which the gateway, the portal and the command line of one
node share; `memory://` counters (rate limits, brute-force regulation) stay per process, but
sign-in state cannot: the portal, the gateway and `warren share revoke` are separate processes.

The gateway asks about revocations on every request. With SQLite it answers from a copy in
memory, which it reloads whenever a change counter has moved: an 8-byte file beside the database
that every writer of a revocation increments after committing, and that readers map into memory,
so looking costs no system call. A reader takes the counter before reloading, so a revocation
committed meanwhile moves the counter again and is loaded by the next request.
"""

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import random
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from core.storage import is_shared, redis_client

log = logging.getLogger("warren.auth")

PREFIX = "warren:"
MIRRORED = "revoked:"  # keys read on every request: served from memory (SqliteKV)


class KeyValue(Protocol):
    async def get_many(self, keys: Sequence[str]) -> dict[str, str]: ...

    async def put(self, key: str, value: str, ttl: float) -> None: ...

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Store unless the key is already there; True when this call stored it."""
        ...

    async def take(self, key: str) -> str | None:
        """Read and delete in one step: of two callers, only one gets the value."""
        ...

    async def close(self) -> None: ...


def open_kv(storage: str, state_dir: Path) -> KeyValue:
    if is_shared(storage):
        return RedisKV(storage)
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
        if all(key.startswith(MIRRORED) for key in keys):
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
            rows = self._db.execute(
                "SELECT key, value, expires FROM kv WHERE key >= ? AND key < ? AND expires > ?",
                (MIRRORED, MIRRORED[:-1] + chr(ord(MIRRORED[-1]) + 1), time.time()),
            ).fetchall()
            self._mirror = {key: (value, expires) for key, value, expires in rows}
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
    is up (and whenever it breaks) it asks Redis on every request instead; a full reload every
    RESYNC_SECONDS bounds what a lost message could ever cost."""

    CHANNEL = PREFIX + "revocations"
    RESYNC_SECONDS = 30.0

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url, decode_responses=True, health_check_interval=5)
        self._mirror: dict[str, tuple[str, float]] | None = None  # None: not in sync
        self._listener: asyncio.Task[None] | None = None

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        if all(key.startswith(MIRRORED) for key in keys):
            mirror = self._mirror
            if mirror is not None:
                now = time.time()
                return {
                    key: entry[0]
                    for key in keys
                    if (entry := mirror.get(key)) is not None and entry[1] > now
                }
            if self._listener is None:
                self._listener = asyncio.create_task(self._follow())
        values = await self._redis.mget([PREFIX + key for key in keys])
        return {
            key: _text(value) for key, value in zip(keys, values, strict=True) if value is not None
        }

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)))
        if key.startswith(MIRRORED):
            await self._redis.publish(self.CHANNEL, key)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        stored = await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)), nx=True)
        if stored and key.startswith(MIRRORED):
            await self._redis.publish(self.CHANNEL, key)
        return bool(stored)

    async def take(self, key: str) -> str | None:
        value = await self._redis.getdel(PREFIX + key)
        return None if value is None else _text(value)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.CHANNEL)
                    await self._resync()  # after subscribing: no change can fall in between
                    log.info("following revocations in Redis (%d now)", len(self._mirror or {}))
                    delay = 0.5
                    resync_at = time.monotonic() + self.RESYNC_SECONDS
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message.get("type") == "message":
                            await self._refresh(_text(message["data"]))
                        if time.monotonic() > resync_at:
                            await self._resync()
                            resync_at = time.monotonic() + self.RESYNC_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: ask it directly until we are back
                self._mirror = None
                log.warning("revocation updates from Redis interrupted (%s); retrying", error)
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
                delay = min(delay * 2, 30.0)

    async def _resync(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{PREFIX}{MIRRORED}*")]
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
