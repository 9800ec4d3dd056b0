"""The node's ACME certificates over time: what is missing is ordered, what is due is renewed,
a failure keeps the certificate being served and is tried again later, each more patiently.

`run` is the loop: a pass over the plan (core.acme.plan), then a sleep until the next renewal
or retry, at most `acme.check_interval`, cut short by `replan` (the policy changed). With shared
storage a pass first copies what another node obtained, and orders only under the lock.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict
from urllib.parse import urlsplit

from cryptography import x509

from core.acme.client import OrderFailed, describe, new_key
from core.acme.issue import issue
from core.acme.local import LocalFiles
from core.acme.plan import Plan, Wanted, plan, renewal_time
from core.acme.shared import Shared
from core.auth.signinstate import KeyValue
from core.certs import Certificate, CertificateError
from core.fields import format_duration
from core.settings import Acme, Settings

log = logging.getLogger("warren.acme")

LOCK_WAIT = timedelta(seconds=5)  # another node is ordering: look for its result this soon
MAX_BACKOFF = timedelta(days=1)


class CertificateStatus(TypedDict):
    names: list[str]
    challenge: str
    expires: str | None
    serial: str | None
    renews: str | None
    last_error: str | None
    next_try: str | None


@dataclass
class Entry:
    wanted: Wanted
    certificate: Certificate | None = None  # the one on disk, being served
    last_error: str | None = None
    failures: int = 0
    retry_at: datetime | None = None
    obtained_at: datetime | None = None

    def status(self, due: datetime) -> CertificateStatus:
        certificate = self.certificate
        return {
            "names": list(self.wanted.names),
            "challenge": self.wanted.challenge,
            "expires": certificate.not_after.isoformat() if certificate else None,
            "serial": f"{certificate.serial:x}" if certificate else None,
            "renews": due.isoformat() if certificate else None,
            "last_error": self.last_error,
            "next_try": self.retry_at.isoformat() if self.retry_at else None,
        }


class AcmeCertificates:
    def __init__(
        self,
        settings: Settings,
        hosts: Callable[[], Iterable[str]],
        kv: KeyValue,
        shared: Shared,
        held: Callable[[str], bool] = lambda _: False,
    ) -> None:
        """`held`: whether one of the admin's certificates is for a name (core.acme.plan)."""
        if settings.acme is None:
            raise ValueError("warren.yaml has no acme section")
        self.acme: Acme = settings.acme
        self.portal_host = urlsplit(settings.public_url).hostname if settings.public_url else None
        self.hosts = hosts
        self.kv = kv
        self.shared = shared
        self.held = held
        self.local = LocalFiles(settings.state_dir)
        self._entries: dict[str, Entry] = {}
        self._skipped: tuple[tuple[str, str], ...] = ()
        self._wake = asyncio.Event()

    def replan(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self.check()
            except Exception:  # the loop must outlive any one pass
                log.exception("acme: checking the certificates failed")
                wait = self.acme.retry_after.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def check(self) -> float:
        """One pass over the plan; the seconds until the next is needed."""
        wanted = self._plan().wanted
        self._entries = {
            w.file_name: self._entries.get(w.file_name) or Entry(w, self.local.certificate(w))
            for w in wanted
        }
        next_at = _now() + self.acme.check_interval
        for entry in self._entries.values():
            next_at = min(next_at, await self._keep(entry))
        return max(0.0, (next_at - _now()).total_seconds())

    def status(self) -> list[CertificateStatus]:
        return [entry.status(self._due(entry)) for entry in self._entries.values()]

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        """The hosts no certificate is ordered for, and why."""
        return self._skipped

    def _plan(self) -> Plan:
        acme = self.acme
        planned = plan(
            self.hosts(), self.portal_host, acme.challenge, acme.dns is not None, self.held
        )
        if planned.skipped != self._skipped:
            for name, reason in planned.skipped:
                log.warning("acme: no certificate for %s: %s", name, reason)
            self._skipped = planned.skipped
        return planned

    async def _keep(self, entry: Entry) -> datetime:
        """Copy, order or leave the entry's certificate; when to look at it next."""
        name = entry.wanted.file_name
        try:
            await self._adopt(entry)
        except Exception as error:  # nothing is lost: this node's file is served as it is
            log.warning("acme: %s: the shared storage did not answer: %s", name, describe(error))
        if self._due(entry) > _now() or (entry.retry_at and entry.retry_at > _now()):
            return self._next(entry)
        try:
            async with self.shared.ordering(name) as ours:
                if not ours:
                    log.info("acme: another node is ordering %s; waiting for it", name)
                    entry.retry_at = _now() + LOCK_WAIT
                    return entry.retry_at
                await self._adopt(entry)  # it may have finished just before the lock was ours
                if self._due(entry) <= _now():
                    await self._order(entry)
        except OrderFailed as error:
            self._failed(entry, str(error))
        except Exception as error:  # the shared storage (no lock, no order) or the disk
            self._failed(entry, f"{type(error).__name__}: {describe(error)}")
        return self._next(entry)

    def _due(self, entry: Entry) -> datetime:
        certificate = entry.certificate
        if certificate is None:
            return datetime.min.replace(tzinfo=UTC)
        due = renewal_time(
            certificate.leaf.not_valid_before_utc, certificate.not_after, self.acme.renew_before
        )
        if entry.obtained_at is not None:  # renew_before longer than the certificate lives
            due = max(due, entry.obtained_at + self.acme.retry_after)
        return due

    def _next(self, entry: Entry) -> datetime:
        retry = entry.retry_at
        return retry if retry is not None and retry > _now() else self._due(entry)

    async def _adopt(self, entry: Entry) -> None:
        """Take the shared certificate when it is newer than this node's."""
        pem = await self.shared.certificate(entry.wanted.file_name)
        if pem is None:
            return
        leaf = x509.load_pem_x509_certificates(pem)[0]
        current = entry.certificate
        if current is not None and leaf.not_valid_after_utc <= current.not_after:
            return
        entry.certificate = self.local.save(entry.wanted, pem)
        entry.retry_at, entry.last_error, entry.failures = None, None, 0
        log.info("acme: %s copied from the shared storage (serial %x)", entry.wanted.file_name,
                 leaf.serial_number)  # fmt: skip

    async def _order(self, entry: Entry) -> None:
        wanted = entry.wanted
        pem = await issue(self.acme, self.kv, await self._account_key(), wanted)
        try:
            certificate = self.local.save(wanted, pem)
        except CertificateError as error:
            raise OrderFailed(f"{wanted.names[0]}: the CA's chain does not load: {error}") from None
        entry.certificate, entry.obtained_at = certificate, _now()
        entry.retry_at, entry.last_error, entry.failures = None, None, 0
        log.info("acme: %s obtained (%s): serial %x, expires %s, renewal due %s",
                 ", ".join(wanted.names), wanted.challenge, certificate.serial,
                 certificate.not_after.isoformat(), self._due(entry).isoformat())  # fmt: skip
        try:
            await self.shared.save(wanted.file_name, pem)
        except Exception as error:  # obtained and served here all the same
            log.warning("acme: %s not shared, other nodes will order their own: %s",
                        wanted.file_name, describe(error))  # fmt: skip

    async def _account_key(self) -> bytes:
        mine = self.local.account_key()
        shared = await self.shared.account_key(mine)
        if mine is None:
            mine = self.local.keep_account_key(shared or new_key())
            await self.shared.account_key(mine)
        return mine

    def _failed(self, entry: Entry, reason: str) -> None:
        entry.failures += 1
        wait = min(self.acme.retry_after * 2 ** (entry.failures - 1), MAX_BACKOFF)
        entry.retry_at, entry.last_error = _now() + wait, reason
        certificate = entry.certificate
        kept = (
            f"still serving the certificate that expires {certificate.not_after.isoformat()}"
            if certificate is not None
            else "no certificate to serve for it yet"
        )
        log.error("acme: %s (%s) not obtained: %s; %s; next try in %s",
                  ", ".join(entry.wanted.names), entry.wanted.challenge, reason, kept,
                  format_duration(wait))  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC)
