"""Throwaway certificates (names or IP addresses) for tests, benchmarks, labs: self-signed, or
signed by a test CA that a client can be told to trust."""

import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(names: list[str]) -> Path:
    """A PEM file holding the key, then the certificate."""
    path = Path(tempfile.mkdtemp(prefix="warren-tls-")) / "cert.pem"
    LocalCa.fresh().issue(names, path, include_ca=False)
    return path


@dataclass(frozen=True)
class LocalCa:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def fresh(cls, name: str = "Warren test CA") -> "LocalCa":
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(
        self,
        names: list[str],
        path: Path,
        *,
        key_path: Path | None = None,
        days: float = 1,
        include_ca: bool = True,
    ) -> x509.Certificate:
        """A leaf for `names` into `path` (key first, then the chain), or its key into
        `key_path` when given; `days` < 0 makes one that has expired. With `include_ca=False`
        the leaf is its own issuer (self-signed)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        own = not include_ca
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - datetime.timedelta(days=3), now + datetime.timedelta(days=days))
        if days >= 0:
            start = now - datetime.timedelta(minutes=5)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if own else self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
            .sign(key if own else self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        chain = certificate.public_bytes(serialization.Encoding.PEM)
        if include_ca:
            chain += self.certificate.public_bytes(serialization.Encoding.PEM)
        if key_path is None:
            path.write_bytes(key_pem + chain)
        else:
            path.write_bytes(chain)
            key_path.write_bytes(key_pem)
        return certificate


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
