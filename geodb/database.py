"""One MaxMind-format database file, opened through geoip2 from a private copy.

The reader maps the file into memory. Were it the file on disk, rewriting that file in place
(`cp new.mmdb GeoLite2-Country.mmdb`) would change the bytes under a running reader, and
truncating it would kill the process with SIGBUS. So the file is copied once into memory only
this process sees (a memfd, or an unlinked temporary file), and the reader maps the copy:
whatever happens to the file afterwards, the running reader is unaffected until a reload
replaces it.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Literal

import geoip2.database
import geoip2.errors
import maxminddb
from maxminddb.errors import InvalidDatabaseError

from core.ipsets import IPAddress
from core.watch import Signature, signature

log = logging.getLogger("warren.geodb")

type Kind = Literal["country", "asn"]

# What geoip2 requires of a database's type before its country() / asn() answer (a substring).
TYPE_MARK: dict[Kind, str] = {"country": "Country", "asn": "GeoLite2-ASN"}
EXPECTED: dict[Kind, str] = {
    "country": "a Country database (GeoLite2-Country, GeoIP2-Country, DB-IP country lite, "
    "or one made by `warren geodb build`)",
    "asn": "an ASN database (GeoLite2-ASN, DB-IP ASN lite, or one made by `warren geodb build` "
    "with an ASN column)",
}

# Looked up once when a file is opened: a data section too damaged to decode these is refused
# before it can answer a request. Damage elsewhere shows up as a failed lookup (unknown).
_PROBES = tuple(
    ip_address(text)
    for text in (
        "1.1.1.1", "8.8.8.8", "81.2.69.142", "89.160.20.112", "175.16.199.1", "216.160.83.56",
        "185.199.108.1", "2001:4860:4860::8888", "2a02:cf40::1", "2001:218::1",
    )
)  # fmt: skip


# Codes a database writes for "no country" (DB-IP's ZZ for reserved ranges, Cloudflare's XX): read
# as unknown, so that `country: [XX]` in a rule matches them and the next file is asked.
_NO_COUNTRY = frozenset({"XX", "ZZ"})

# A record geoip2 cannot decode or cannot build its model from (a value of the wrong shape).
_DAMAGED = (InvalidDatabaseError, ValueError, TypeError, KeyError)


_MISSING = "no such file (`warren geodb fetch` downloads one; `warren geodb build` makes one)"


class DatabaseError(Exception):
    """A database file Warren cannot use: missing, unreadable, corrupt, or of the wrong kind."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(slots=True, eq=False)
class Database:
    path: Path
    kind: Kind
    reader: geoip2.database.Reader = field(repr=False)
    database_type: str
    built: datetime
    ip_version: int
    signature: Signature  # of the file when it was copied, to tell a real change on disk
    lookup_errors: int = 0

    @property
    def description(self) -> str:
        return f"{self.path.name} ({self.database_type}, built {self.built:%Y-%m-%d})"

    def country(self, ip: IPAddress) -> str | None:
        try:
            code = self.reader.country(ip).country.iso_code
        except geoip2.errors.AddressNotFoundError:
            return None
        except _DAMAGED as error:
            self._failed(ip, error)
            return None
        return None if code in _NO_COUNTRY else code

    def asn(self, ip: IPAddress) -> tuple[int, str | None] | None:
        try:
            found = self.reader.asn(ip)
        except geoip2.errors.AddressNotFoundError:
            return None
        except _DAMAGED as error:
            self._failed(ip, error)
            return None
        number = found.autonomous_system_number
        if not number:  # AS0 (RFC 7607) is no network: unknown, as a rule's `asn: [0]` says
            return None
        return number, found.autonomous_system_organization

    def _failed(self, ip: IPAddress, error: Exception) -> None:
        # An IPv6 address against an IPv4-only database is merely "not in it"; anything else is a
        # damaged record. Either way the address is unknown: XX / AS0 to the rules.
        if isinstance(error, ValueError) and ip.version == 6 and self.ip_version == 4:
            return
        self.lookup_errors += 1
        if self.lookup_errors == 1:
            log.error("%s: looking up %s failed (%s); treated as unknown", self.path, ip, error)

    def close(self) -> None:
        self.reader.close()


def open_database(path: Path, kind: Kind) -> Database:
    """Open, check the kind, probe. Raises DatabaseError with a reason people can act on."""
    seen = signature(path)
    try:
        with _private_copy(path) as copy:
            reader = geoip2.database.Reader(copy, mode=maxminddb.MODE_AUTO)
    except FileNotFoundError:
        raise DatabaseError(path, _MISSING) from None
    except IsADirectoryError:
        raise DatabaseError(path, "is a directory, not a database file") from None
    except OSError as error:
        raise DatabaseError(path, f"cannot be read: {error.strerror or error}") from None
    except (InvalidDatabaseError, ValueError):
        raise DatabaseError(
            path, "is not a MaxMind-format database (corrupt, truncated, or another format)"
        ) from None
    try:
        database = _checked(path, kind, reader, seen)
    except DatabaseError:
        reader.close()
        raise
    return database


def _checked(path: Path, kind: Kind, reader: geoip2.database.Reader, seen: Signature) -> Database:
    metadata = reader.metadata()
    database_type = str(metadata.database_type)
    if TYPE_MARK[kind] not in database_type:
        raise DatabaseError(
            path, f"is a {database_type} database; geoip.{kind}_db needs {EXPECTED[kind]}"
        )
    database = Database(
        path=path,
        kind=kind,
        reader=reader,
        database_type=database_type,
        built=datetime.fromtimestamp(int(metadata.build_epoch), UTC),
        ip_version=int(metadata.ip_version),
        signature=seen,
    )
    lookup = reader.country if kind == "country" else reader.asn
    for probe in _PROBES:
        if probe.version > database.ip_version:
            continue
        try:
            lookup(probe)
        except geoip2.errors.AddressNotFoundError:
            continue
        except _DAMAGED as error:
            raise DatabaseError(path, f"is corrupt: looking up {probe} failed ({error})") from None
    return database


@contextmanager
def _private_copy(path: Path) -> Iterator[str]:
    """A path to a copy of `path` that nothing else can write; gone once the reader maps it."""
    with open(path, "rb") as source:
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            descriptor = os.memfd_create(f"warren-{path.name}", os.MFD_CLOEXEC)
            try:
                with open(descriptor, "wb", closefd=False) as copy:
                    shutil.copyfileobj(source, copy, 1 << 20)
                yield f"/proc/self/fd/{descriptor}"
            finally:
                os.close(descriptor)
        else:
            with tempfile.NamedTemporaryFile(prefix="warren-geodb-", suffix=".mmdb") as copy:
                shutil.copyfileobj(source, copy, 1 << 20)
                copy.flush()
                yield copy.name
