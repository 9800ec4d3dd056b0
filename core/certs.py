"""The node's TLS certificates: the files people (or certbot) manage and the ones ACME obtained,
opened and checked the same way by the gateway and by `warren check`.

A certificate file is PEM: the private key (unless it is in a file of its own) and the chain,
leaf first. Whatever is wrong with one is said in a `CertificateError` naming the file.
"""

import contextlib
import datetime
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from core.problems import ConfigError, Problem
from core.watch import Signature, signature

log = logging.getLogger("warren.certs")

# Where the gateway's ACME client leaves what it obtained: one PEM per certificate, key first.
ACME_CERTIFICATES = Path("acme") / "certificates"

_KEY_MARKERS = (b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN RSA PRIVATE KEY-----",
                b"-----BEGIN EC PRIVATE KEY-----")  # fmt: skip


class CertificateError(ValueError):
    """A certificate file Warren cannot serve; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Certificate:
    path: Path
    chain: tuple[x509.Certificate, ...]  # leaf first
    key: PrivateKeyTypes = field(repr=False, compare=False)
    names: tuple[str, ...]  # DNS names (lower case) and IP addresses the leaf is for

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> datetime.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.leaf.serial_number

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.chain_pem).hexdigest()[:16]

    def covers(self, host: str) -> bool:
        return any(name_covers(name, host) for name in self.names)

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or datetime.datetime.now(datetime.UTC)) >= self.not_after

    def describe(self) -> dict[str, object]:
        return {
            "file": str(self.path),
            "names": list(self.names),
            "not_after": self.not_after.isoformat(),
            "serial": f"{self.serial:x}",
        }


def name_covers(name: str, host: str) -> bool:
    """RFC 6125 §6.4.3: a wildcard stands for exactly one whole left-most label."""
    host = host.lower().rstrip(".")
    if name.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == name[2:]
    return name == host


def load_certificate(path: Path, key_path: Path | None = None) -> Certificate:
    """The certificate in `path`, its key from `key_path` or from the same file."""
    pem = _read(path)
    try:
        chain = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError:
        raise CertificateError(f"{path}: holds no PEM certificate") from None
    key = _key(key_path or path, _read(key_path) if key_path else pem)
    leaf = chain[0]
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise CertificateError(f"{key_path or path}: the private key is not the certificate's")
    names = _names(leaf)
    if not names:
        raise CertificateError(f"{path}: the certificate names no host (no subjectAltName)")
    return Certificate(path, chain, key, names)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CertificateError(f"{path}: cannot be read: {error.strerror}") from None


def _key(path: Path, pem: bytes) -> PrivateKeyTypes:
    start = min((i for marker in _KEY_MARKERS if (i := pem.find(marker)) >= 0), default=-1)
    if start < 0:
        raise CertificateError(f"{path}: holds no private key (PEM, unencrypted)")
    try:
        return serialization.load_pem_private_key(pem[start:], password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{path}: the private key does not load: {error}") from None


def _names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        # RFC 6125 §6.4.4: the common name only counts where there is no subjectAltName.
        return tuple(
            str(attribute.value).lower()
            for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return tuple(dict.fromkeys(dns + ips))


def acme_files(state_dir: Path) -> list[Path]:
    """What the ACME client has left in `state_dir`, in a stable order."""
    directory = state_dir / ACME_CERTIFICATES
    return sorted(directory.glob("*.pem")) if directory.is_dir() else []


def uncovered(certificates: Iterable[Certificate], hosts: Iterable[str]) -> Iterator[str]:
    """Each host (a policy host, `*.example.com` included) no certificate is for."""
    held = list(certificates)
    for host in hosts:
        if not any(_covers_pattern(c, host) for c in held):
            yield host


def _covers_pattern(certificate: Certificate, host: str) -> bool:
    if host.startswith("*."):  # only a wildcard certificate for the same parent covers every name
        return host.lower() in certificate.names
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return certificate.covers(host)
    return host in certificate.names


type CertPaths = tuple[Path, Path | None]  # a certificate file, and its key's when apart
type Listener = Callable[[tuple["Certificate", ...]], None]


class NodeCertificates:
    """What this node serves: the admin's certificates (`certs:` in warren.yaml, in their order)
    then ACME's. `refresh` re-reads files that changed; one that no longer loads keeps the
    certificate last loaded from it, and says why in `errors`."""

    def __init__(self, admin: Sequence[CertPaths], state_dir: Path) -> None:
        self._admin = tuple(admin)
        self._state_dir = state_dir
        self._loaded: dict[CertPaths, tuple[tuple[Signature, Signature], Certificate]] = {}
        self.errors: dict[Path, str] = {}
        self.current: tuple[Certificate, ...] = ()
        self._listeners: list[Listener] = []

    @classmethod
    def open(
        cls, admin: Sequence[CertPaths], state_dir: Path, source: Path | None = None
    ) -> "NodeCertificates":
        """Raises ConfigError (at `certs[i]` of `source`) when one of the admin's files cannot
        be served: at start there is no last good certificate to serve instead."""
        node = cls(admin, state_dir)
        with contextlib.suppress(OSError):  # made here so that watching it starts quietly
            (state_dir / ACME_CERTIFICATES).mkdir(mode=0o700, parents=True, exist_ok=True)
        node.refresh()
        problems = [
            Problem(("certs", index), node.errors[cert], source)
            for index, (cert, _) in enumerate(node._admin)
            if cert in node.errors
        ]
        if problems:
            raise ConfigError(problems)
        return node

    @property
    def watched(self) -> list[Path]:
        """The files and the directory whose changes `refresh` should follow."""
        files = [path for cert, key in self._admin for path in (cert, key) if path is not None]
        return [*files, self._state_dir / ACME_CERTIFICATES]

    def admin_covers(self, host: str) -> bool:
        """Whether one of the admin's own certificates (not ACME's) is for `host`."""
        admin = [self._loaded[paths][1] for paths in self._admin if paths in self._loaded]
        return not list(uncovered(admin, [host]))

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def refresh(self, force: bool = False) -> bool:
        """Whether what is served changed."""
        wanted = [*self._admin, *((path, None) for path in acme_files(self._state_dir))]
        loaded = {
            paths: entry for paths in wanted if (entry := self._load(paths, force)) is not None
        }
        kept = {cert for cert, _ in wanted}
        self.errors = {path: error for path, error in self.errors.items() if path in kept}
        self._loaded = loaded
        served = tuple(certificate for _, certificate in loaded.values())
        if served == self.current:
            return False
        self.current = served
        for listener in self._listeners:
            listener(served)
        return True

    def status(self) -> list[dict[str, object]]:
        failed: list[dict[str, object]] = [
            {"file": str(path), "error": error} for path, error in self.errors.items()
        ]
        return [*(c.describe() for c in self.current), *failed]

    def _load(
        self, paths: CertPaths, force: bool
    ) -> tuple[tuple[Signature, Signature], Certificate] | None:
        cert, key = paths
        seen = (signature(cert), signature(key) if key is not None else None)
        before = self._loaded.get(paths)
        if before is not None and before[0] == seen and not force:
            return before
        try:
            certificate = load_certificate(cert, key)
        except CertificateError as error:
            if self.errors.get(cert) != str(error):
                kept = "; still serving the one loaded before" if before else ""
                log.error("certificate %s%s", error, kept)
            self.errors[cert] = str(error)
            return before
        self.errors.pop(cert, None)
        if certificate.expired():
            log.warning("certificate %s expired on %s", cert, certificate.not_after.date())
        log.info("certificate %s: %s", cert, ", ".join(certificate.names))
        return seen, certificate


def check_certificates(
    admin: Sequence[CertPaths], hosts: Iterable[str], source: Path | None
) -> tuple[list[Problem], list[Certificate]]:
    """What `warren check warren.yaml` says of `certs:`: each file that would not be served or
    has expired, and each host (the policy's, the portal's) none of them is for."""
    problems: list[Problem] = []
    opened: list[Certificate] = []
    for index, (cert, key) in enumerate(admin):
        try:
            certificate = load_certificate(cert, key)
        except CertificateError as error:
            problems.append(Problem(("certs", index), str(error), source))
            continue
        opened.append(certificate)
        if certificate.expired():
            when = certificate.not_after.date()
            problems.append(Problem(("certs", index), f"{cert}: expired on {when}", source))
    if opened:
        for host in uncovered(opened, hosts):
            problems.append(Problem(("certs",), f"no certificate here is for {host}", source))
    return problems, opened
