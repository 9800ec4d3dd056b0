"""One certificate from the CA: order, publish the challenges, let the CA validate, finalize;
the challenges are withdrawn afterwards, whether the order succeeded or not.

The acme package blocks (requests), so its calls run on a thread; publishing runs on the event
loop, where the shared state and the DNS provider's client live.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from core.acme import tokens
from core.acme.client import AcmeClient, OrderFailed, Task, new_key
from core.acme.dns import DnsError, DnsProvider, open_provider
from core.acme.plan import Wanted
from core.auth.signinstate import KeyValue
from core.settings import Acme

log = logging.getLogger("warren.acme")


async def in_thread[T](work: Callable[[], T]) -> T:
    """asyncio.to_thread on a daemon thread: the default executor is joined when the loop
    ends, so a gateway told to stop while the CA is slow would wait for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def back(settle: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(lambda: None if future.done() else settle())

    def run() -> None:
        try:
            result = work()
        except BaseException as error:
            back(partial(future.set_exception, error))
            return
        back(partial(future.set_result, result))

    threading.Thread(target=run, name="warren-acme", daemon=True).start()
    return await future


async def issue(settings: Acme, kv: KeyValue, account_key: bytes, wanted: Wanted) -> bytes:
    """The new certificate's file contents: its private key, then the chain, leaf first.
    Raises OrderFailed, saying why in one line."""
    key = new_key()
    acme = await in_thread(
        lambda: AcmeClient.open(settings.directory, settings.ca_bundle, account_key, settings.email)
    )
    order = await in_thread(lambda: acme.order(wanted.names, wanted.challenge, key))
    published = _Published(settings, kv)
    try:
        await published.publish(order.tasks)
        chain = await in_thread(lambda: acme.complete(order))
    finally:
        await published.withdraw()
    return key + chain.encode()


@dataclass
class _Published:
    settings: Acme
    kv: KeyValue
    _tokens: list[str] = field(default_factory=list)
    _records: list[tuple[str, str]] = field(default_factory=list)  # record, provider's handle
    _provider: DnsProvider | None = None

    async def publish(self, tasks: tuple[Task, ...]) -> None:
        for task in tasks:
            if task.kind == "http-01":
                await tokens.publish(self.kv, task.token, task.value)
                self._tokens.append(task.token)
            else:
                await self._add_record(task)
        if self._records and self.settings.dns is not None:
            await asyncio.sleep(self.settings.dns.propagation_delay.total_seconds())

    async def withdraw(self) -> None:
        for token in self._tokens:
            try:
                await tokens.withdraw(self.kv, token)
            except Exception as error:  # it expires by itself (tokens.TTL_SECONDS)
                log.warning("acme: could not withdraw http-01 token %s: %s", token, error)
        if self._provider is None:
            return
        for record, handle in self._records:
            try:
                await self._provider.remove_txt(handle)
            except DnsError as error:
                log.warning("acme: TXT record %s stays, remove it by hand: %s", record, error)
        await self._provider.aclose()

    async def _add_record(self, task: Task) -> None:
        if self.settings.dns is None:
            raise OrderFailed(f"{task.identifier}: dns-01 needs a provider in acme.dns")
        if self._provider is None:
            self._provider = open_provider(self.settings.dns)
        try:
            handle = await self._provider.add_txt(task.token, task.value)
        except DnsError as error:
            raise OrderFailed(f"{task.identifier}: dns-01: {error}") from None
        self._records.append((task.token, handle))
