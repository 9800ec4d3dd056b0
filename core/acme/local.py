"""What ACME leaves in state_dir: the account key and one PEM per certificate (the private key,
then the chain, leaf first), mode 0600, where the serving layer (core.certs) reads them."""

import contextlib
import logging
from dataclasses import replace
from pathlib import Path

from core.acme.plan import Wanted
from core.certs import ACME_CERTIFICATES, Certificate, CertificateError, load_certificate
from core.files import replacing, write_atomically

log = logging.getLogger("warren.acme")


class LocalFiles:
    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "acme"
        self.account_key_path = self.directory / "account.key"
        self.certificates = state_dir / ACME_CERTIFICATES

    def account_key(self) -> bytes | None:
        try:
            return self.account_key_path.read_bytes()
        except FileNotFoundError:
            return None

    def keep_account_key(self, pem: bytes) -> bytes:
        """Write the account key unless one is there (never overwritten: the account is the
        key); the key that is there now."""
        self._private_directory()
        with contextlib.suppress(FileExistsError):
            write_atomically(self.account_key_path, pem, exclusive=True)
        return self.account_key_path.read_bytes()

    def path(self, wanted: Wanted) -> Path:
        return self.certificates / wanted.file_name

    def certificate(self, wanted: Wanted) -> Certificate | None:
        """The certificate on disk for `wanted`; None when missing or unusable (then a new one
        is ordered, and the reason is logged)."""
        path = self.path(wanted)
        if not path.exists():
            return None
        try:
            certificate = load_certificate(path)
        except CertificateError as error:
            log.error("acme: %s; ordering a new one", error)
            return None
        if not all(name in certificate.names for name in wanted.names):
            return None  # a file from another plan: re-ordered for the names wanted now
        return certificate

    def save(self, wanted: Wanted, pem: bytes) -> Certificate:
        """Replace the certificate file, once what is about to replace it loads: a file the
        serving layer cannot use never takes the place of one it can."""
        self._private_directory()
        path = self.path(wanted)
        with replacing(path) as temporary:
            temporary.write_bytes(pem)
            loaded = load_certificate(temporary)  # raises: the file there stays as it was
        return replace(loaded, path=path)

    def _private_directory(self) -> None:
        for directory in (self.directory, self.certificates):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
