"""`warren geodb fetch`: download, verify, unpack and install a provider's database.

Every step works in a staging directory beside the target, so the last one (a rename) is the
only one that touches the installed file: a failed, truncated or corrupted download leaves it
as it was.

- MaxMind ships `EDITION_YYYYMMDD/EDITION.mmdb` in a tar.gz and publishes its SHA-256; the
  archive must match it.
- DB-IP ships a gzip of the .mmdb and publishes no checksum. Instead: the gzip trailer's CRC-32
  and length (a truncated or altered download fails to decompress), then the checks below.
- Either way the .mmdb must open as a MaxMind-format database of the expected kind, every
  record must decode, and it must hold at least one network with the field Warren reads.
"""

import gzip
import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import maxminddb

from core.files import replacing
from geodb.database import DatabaseError, Kind, open_database

type Provider = Literal["maxmind", "dbip"]
type OnProgress = Callable[[str, int, int | None], None]  # label, bytes so far, total

BASE_URL_ENV: dict[Provider, str] = {
    "maxmind": "WARREN_MAXMIND_URL",
    "dbip": "WARREN_DBIP_URL",
}
DEFAULT_BASE_URL: dict[Provider, str] = {
    "maxmind": "https://download.maxmind.com",
    "dbip": "https://download.db-ip.com",
}
DEFAULT_EDITIONS: dict[Provider, tuple[str, ...]] = {
    "maxmind": ("GeoLite2-Country", "GeoLite2-ASN"),
    "dbip": ("country-lite", "asn-lite"),
}
MAX_DATABASE_BYTES = 2 << 30  # refuse to unpack more than this from an archive
_CHUNK = 1 << 16
_ONE_DAY = timedelta(days=1)


class FetchError(Exception):
    """Said to the user as is; whatever was installed before is still there."""


class NotFound(FetchError):
    pass


@dataclass(frozen=True, slots=True)
class Edition:
    provider: Provider
    name: str  # MaxMind's edition id, or DB-IP's file stem
    kind: Kind

    @property
    def filename(self) -> str:
        return f"{self.name}.mmdb" if self.provider == "maxmind" else f"dbip-{self.name}.mmdb"


def edition(provider: Provider, name: str) -> Edition:
    lowered = name.lower()
    kind: Kind | None = "asn" if "asn" in lowered else "country" if "country" in lowered else None
    if kind is None:
        raise FetchError(
            f"{name}: Warren reads Country and ASN databases; "
            f"try {' or '.join(DEFAULT_EDITIONS[provider])}"
        )
    return Edition(provider, name, kind)


def base_url(provider: Provider, override: str | None = None) -> str:
    url = (override or os.environ.get(BASE_URL_ENV[provider]) or DEFAULT_BASE_URL[provider]).rstrip(
        "/"
    )
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"{url}: the base URL must be http:// or https://")
    return url


@dataclass(frozen=True, slots=True)
class Installed:
    edition: Edition
    path: Path
    source: str  # the URL, without any key
    networks: int
    database_type: str


def fetch(
    target: Edition,
    directory: Path,
    *,
    base: str,
    license_key: str | None = None,
    month: date | None = None,
    on_progress: OnProgress | None = None,
    output: Path | None = None,
) -> Installed:
    destination = output or directory / target.filename
    destination.parent.mkdir(parents=True, exist_ok=True)
    # The database is unpacked straight into the file that replaces the installed one, once it
    # verifies; the archive stays in a directory that goes away whatever happens.
    with (
        tempfile.TemporaryDirectory(dir=destination.parent, prefix=".warren-geodb-") as work,
        replacing(destination, mode=0o644) as staged,
    ):
        staging = Path(work)
        if target.provider == "maxmind":
            if not license_key:
                raise FetchError(
                    "MaxMind needs a license key: --license-key or MAXMIND_LICENSE_KEY"
                )
            source = _maxmind(target, staging, staged, base, license_key, on_progress)
        else:
            source = _dbip(target, staging, staged, base, month, on_progress)
        networks, database_type = verify(staged, target.kind)
    return Installed(target, destination, source, networks, database_type)


def _maxmind(
    target: Edition,
    staging: Path,
    out: Path,
    base: str,
    key: str,
    on_progress: OnProgress | None,
) -> str:
    def url(suffix: str) -> str:
        query = {"edition_id": target.name, "license_key": key, "suffix": suffix}
        return f"{base}/app/geoip_download?{urllib.parse.urlencode(query)}"

    shown = url("tar.gz").replace(urllib.parse.quote_plus(key), "***")
    archive = staging / f"{target.name}.tar.gz"
    download(url("tar.gz"), archive, f"{target.name}.tar.gz", on_progress, shown)
    published = _published_sha256(download_text(url("tar.gz.sha256"), shown + ".sha256"))
    actual = _sha256(archive)
    if actual != published:
        raise FetchError(
            f"{target.name}.tar.gz does not match the SHA-256 MaxMind publishes "
            f"(got {actual[:16]}..., expected {published[:16]}...); nothing was installed"
        )
    _unpack_tar(archive, f"{target.name}.mmdb", out)
    return shown


def _dbip(
    target: Edition,
    staging: Path,
    out: Path,
    base: str,
    month: date | None,
    on_progress: OnProgress | None,
) -> str:
    # DB-IP publishes each month's file during the first days of the month: when this month's
    # is not out yet, last month's is the latest.
    today = datetime.now(UTC).date()
    months = [month] if month else [today, (today.replace(day=1) - _ONE_DAY)]
    compressed = staging / f"{target.filename}.gz"
    for candidate in months:
        name = f"dbip-{target.name}-{candidate:%Y-%m}.mmdb.gz"
        url = f"{base}/free/{name}"
        try:
            download(url, compressed, name, on_progress)
        except NotFound:
            if candidate is months[-1]:
                raise
            continue
        _gunzip(compressed, out, name)
        return url
    raise AssertionError("unreachable")


def download(
    url: str,
    path: Path,
    label: str,
    on_progress: OnProgress | None = None,
    shown: str | None = None,
) -> None:
    shown = shown or url
    with _open(url, shown) as response, open(path, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                if on_progress is not None:
                    on_progress(label, received, total)
        except (http.client.IncompleteRead, OSError) as error:
            raise FetchError(
                f"{shown}: the download broke off after {received} bytes ({error})"
            ) from None
    if total is not None and received != total:
        raise FetchError(f"{shown}: the download broke off after {received} of {total} bytes")


def download_text(url: str, shown: str) -> str:
    with _open(url, shown) as response:
        try:
            return response.read(1 << 16).decode("utf-8", "replace")
        except (http.client.IncompleteRead, OSError) as error:
            raise FetchError(f"{shown}: the download broke off ({error})") from None


def _open(url: str, shown: str) -> http.client.HTTPResponse:
    # The scheme is http or https: base_url() refuses any other.
    request = urllib.request.Request(url, headers={"User-Agent": "warren-geodb"})  # noqa: S310
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=60)  # noqa: S310
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise NotFound(f"{shown}: not found (HTTP 404)") from None
        if error.code in (401, 403):
            raise FetchError(
                f"{shown}: refused (HTTP {error.code}); check the license key and that it may "
                "download this edition"
            ) from None
        raise FetchError(f"{shown}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"{shown}: cannot connect ({reason})") from None
    return response


def _published_sha256(text: str) -> str:
    digest = text.strip().split()[0].lower() if text.strip() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise FetchError(f"the published checksum is not a SHA-256: {text[:80]!r}")
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack_tar(archive: Path, member_name: str, out: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).name == member_name:
                    if member.size > MAX_DATABASE_BYTES:
                        raise FetchError(f"{member.name} is {member.size} bytes; too large")
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has content
                    _copy(source, out)
                    return
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise FetchError(f"{archive.name} is not a readable tar.gz ({error})") from None
    raise FetchError(f"{archive.name} holds no {member_name}")


def _gunzip(compressed: Path, out: Path, label: str) -> None:
    try:
        with gzip.open(compressed, "rb") as source:
            _copy(source, out)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise FetchError(
            f"{label} is damaged or truncated ({error}); nothing was installed"
        ) from None


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy(source: _Readable, out: Path) -> None:
    written = 0
    with open(out, "wb") as handle:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > MAX_DATABASE_BYTES:
                raise FetchError(f"{out.name} unpacks to more than {MAX_DATABASE_BYTES} bytes")
            handle.write(chunk)


def verify(path: Path, kind: Kind) -> tuple[int, str]:
    """Opens as a database of `kind` (the gateway's own checks), and every record decodes.

    Returns how many networks hold the field Warren reads, and the database type.
    """
    try:
        database = open_database(path, kind)
    except DatabaseError as error:
        raise FetchError(f"the downloaded database {error.reason}; nothing was installed") from None
    database.close()
    useful = 0
    try:
        with maxminddb.open_database(str(path)) as reader:
            for _network, record in reader:
                if not isinstance(record, dict):
                    raise FetchError(f"a record is {type(record).__name__}, not a map")
                useful += _holds(record, kind)
    except (maxminddb.InvalidDatabaseError, ValueError) as error:
        raise FetchError(
            f"the downloaded database is corrupt ({error}); nothing was installed"
        ) from None
    if not useful:
        raise FetchError(f"the downloaded database holds no {kind} data; nothing was installed")
    return useful, database.database_type


def _holds(record: dict[str, object], kind: Kind) -> bool:
    if kind == "asn":
        return isinstance(record.get("autonomous_system_number"), int)
    country = record.get("country")
    return isinstance(country, dict) and isinstance(country.get("iso_code"), str)
