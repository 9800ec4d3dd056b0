"""What nodes that share `storage` share of ACME: the account key, every certificate (key and
chain), and the right to order one (a lock with an expiry, so a node that dies while ordering
does not hold it for ever). Each node still writes its own files (core.acme.local) from here,
and serves from those; one node orders, the others copy, and the CA sees one order.

`memory://` storage shares nothing: the node is alone, and always holds the lock.
"""

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from core.storage import is_shared, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("warren.acme")

_PREFIX = "warren:acme:"
LOCK_SECONDS = 600  # longer than any order takes (client.ORDER_SECONDS, DNS propagation)


class Shared(Protocol):
    async def account_key(self, mine: bytes | None) -> bytes | None:
        """The nodes' account key: the one stored, or `mine` stored as it when none is."""
        ...

    async def certificate(self, file_name: str) -> bytes | None: ...

    async def save(self, file_name: str, pem: bytes) -> None: ...

    def ordering(self, file_name: str) -> AbstractAsyncContextManager[bool]:
        """Whether this node may order `file_name` now: no other node is."""
        ...

    async def close(self) -> None: ...


class NodeOnly:
    async def account_key(self, mine: bytes | None) -> bytes | None:
        return mine

    async def certificate(self, file_name: str) -> bytes | None:
        return None

    async def save(self, file_name: str, pem: bytes) -> None:
        pass

    @contextlib.asynccontextmanager
    async def ordering(self, file_name: str) -> AsyncIterator[bool]:
        yield True

    async def close(self) -> None:
        pass


class RedisShared:
    def __init__(self, url: str) -> None:
        self._redis: Redis = redis_client(url)

    async def account_key(self, mine: bytes | None) -> bytes | None:
        key = _PREFIX + "account.key"
        if mine is not None:
            await self._redis.set(key, mine, nx=True)
        return _bytes(await self._redis.get(key))

    async def certificate(self, file_name: str) -> bytes | None:
        return _bytes(await self._redis.get(_PREFIX + "certificate:" + file_name))

    async def save(self, file_name: str, pem: bytes) -> None:
        await self._redis.set(_PREFIX + "certificate:" + file_name, pem)

    @contextlib.asynccontextmanager
    async def ordering(self, file_name: str) -> AsyncIterator[bool]:
        # redis-py's Lock: SET NX PX with a token of its own, released only by its holder.
        lock = self._redis.lock(_PREFIX + "ordering:" + file_name, timeout=LOCK_SECONDS)
        held = await lock.acquire(blocking=False)
        try:
            yield bool(held)
        finally:
            if held:
                with contextlib.suppress(Exception):  # expired meanwhile: not ours to free
                    await lock.release()

    async def close(self) -> None:
        await self._redis.aclose()


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def open_shared(storage: str) -> Shared:
    return RedisShared(storage) if is_shared(storage) else NodeOnly()
