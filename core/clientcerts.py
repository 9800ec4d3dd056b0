"""Client certificates for mutual TLS (a resource's `auth: {client_ca: FILE}`): the CA bundle,
read once per policy load, and the check of the chain a client presented against it.

The check is RFC 5280 path validation as cryptography's `x509.verification` does it (the
CA/Browser Forum profile of it: a CA has basicConstraints CA:TRUE and keyUsage keyCertSign, a
certificate names its issuer's key in authorityKeyIdentifier, an extendedKeyUsage, when there
is one, includes clientAuth), validity dates included, with one relaxation: a client
certificate may name its holder by its subject alone, without subjectAltName (RFC 5280
§4.2.1.6 asks for one only when the subject is empty).
"""

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

# Identities in headers: the name must travel in Remote-User as it is, and be short.
_NAME_LIMIT = 256
_MAX_CHAIN = 8  # certificates a client may send (leaf and intermediates), as a bound on work


class ClientCaError(ValueError):
    """A client_ca file that cannot serve: why, for the policy error."""


class CertificateRefused(ValueError):
    """A presented chain that does not prove anyone here: why, for the log and the 403 page."""


@dataclass(frozen=True, slots=True, eq=False)
class ClientCa:
    """One resource's trust anchors. Compared by identity: a policy load makes new ones."""

    path: Path
    certificates: tuple[x509.Certificate, ...]
    fingerprint: bytes = field(repr=False)  # sha256 over every certificate's DER, in order
    _store: Store = field(repr=False)

    def subject_of(self, chain: Sequence[x509.Certificate], now: datetime.datetime) -> str:
        """The holder's name (`subject_name`) when `chain` (the leaf first, then whatever
        intermediates the client sent) leads to one of these CAs and every certificate on the
        path is valid at `now`; else CertificateRefused."""
        if not chain:
            raise CertificateRefused("no client certificate")
        if len(chain) > _MAX_CHAIN:
            raise CertificateRefused(f"more than {_MAX_CHAIN} certificates sent")
        leaf, *intermediates = chain
        try:
            _verifier(self._store, now).verify(leaf, intermediates)
        except VerificationError as error:
            raise CertificateRefused(
                f"{_describe(leaf)} is not valid for {self.path.name}: {error}"
            ) from None
        return subject_name(leaf)


def load_client_ca(path: Path) -> ClientCa:
    """The PEM bundle at `path`; ClientCaError when it cannot be read, holds no certificate, or
    holds one that is not a CA."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ClientCaError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise ClientCaError(f"{path}: holds no PEM certificate") from None
    for certificate in certificates:
        if not _is_ca(certificate):
            raise ClientCaError(
                f"{path}: {_describe(certificate)} is not a CA certificate "
                "(basicConstraints CA:TRUE); put the CA that issues the client certificates here"
            )
    digest = hashlib.sha256()
    for certificate in certificates:
        digest.update(certificate.public_bytes(serialization.Encoding.DER))
    return ClientCa(path, certificates, digest.digest(), Store(list(certificates)))


def subject_name(certificate: x509.Certificate) -> str:
    """The subject's common name, else its first subjectAltName (a DNS name, e-mail address or
    URI); CertificateRefused when it has neither, or one that cannot go into a header."""
    name = _common_name(certificate) or _first_alt_name(certificate)
    if not name:
        raise CertificateRefused(f"{_describe(certificate)} names no one (no CN, no SAN)")
    if len(name) > _NAME_LIMIT or not all(" " <= c <= "~" for c in name):
        raise CertificateRefused(
            f"{_describe(certificate)}: its name is longer than {_NAME_LIMIT} characters "
            "or not printable ASCII"
        )
    return name


def _verifier(store: Store, now: datetime.datetime) -> ClientVerifier:
    leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(store)
        .time(now)
        .max_chain_depth(_MAX_CHAIN)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy)
        .build_client_verifier()
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _common_name(certificate: x509.Certificate) -> str | None:
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def _first_alt_name(certificate: x509.Certificate) -> str | None:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in names:
        if isinstance(name, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            return name.value
    return None


def _describe(certificate: x509.Certificate) -> str:
    return f"the certificate {certificate.subject.rfc4514_string()!r}"
