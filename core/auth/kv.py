"""The sign-in state every Warren process of a node (and every node sharing Redis) must agree on:
revoked sessions, one-time codes, used TOTP codes, revoked share links.

`storage: redis://...` keeps it in Redis (redis-py's asyncio client). Otherwise it lives in one
SQLite file in state_dir (WAL mode), which the gateway, the portal and the command line of one
node share; `memory://` counters (rate limits, brute-force regulation) stay per process, but
sign-in state cannot: the portal, the gateway and `warren share revoke` are separate processes.
Reads on the per-request path take a few microseconds from SQLite.
"""

import asyncio
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import redis.asyncio as redis_asyncio

PREFIX = "warren:"


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
    if storage.startswith(("redis://", "rediss://", "unix://")):
        return RedisKV(storage)
    return SqliteKV(state_dir / "signin.sqlite3")


class SqliteKV:
    _SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT, expires REAL)"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = self._connect()
        self._writes = 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(self._SCHEMA)
        return db

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        return self.get_many_now(keys)

    def get_many_now(self, keys: Sequence[str]) -> dict[str, str]:
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(
            f"SELECT key, value FROM kv WHERE key IN ({marks}) AND expires > ?",  # noqa: S608
            (*keys, time.time()),
        ).fetchall()
        return dict(rows)

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

        def run() -> int:
            db = self._connect()
            try:
                changed = db.execute(sql, parameters).rowcount
                if prune:
                    db.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),))
                return changed
            finally:
                db.close()

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        self._db.close()


class RedisKV:
    def __init__(self, url: str) -> None:
        self._redis = redis_asyncio.Redis.from_url(url, decode_responses=True)

    async def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        values = await self._redis.mget([PREFIX + key for key in keys])
        return {
            key: _text(value) for key, value in zip(keys, values, strict=True) if value is not None
        }

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)))

    async def add(self, key: str, value: str, ttl: float) -> bool:
        stored = await self._redis.set(PREFIX + key, value, px=max(1, int(ttl * 1000)), nx=True)
        return bool(stored)

    async def take(self, key: str) -> str | None:
        value = await self._redis.getdel(PREFIX + key)
        return None if value is None else _text(value)

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
