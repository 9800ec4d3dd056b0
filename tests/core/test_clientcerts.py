"""Client certificates for mutual TLS (core.clientcerts): a resource's CA bundle and the check
of a presented chain — the CA's own and through an intermediate pass, another CA's, an expired
or not yet valid one, and one for servers only do not — and policy.yaml's client_ca, read
beside the policy when it loads. `Authority` makes the certificates
(tests.addons.test_client_certificates uses it too)."""

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.clientcerts import CertificateRefused, ClientCaError, load_client_ca, subject_name
from core.policy.check import Capabilities
from core.policy.load import load_policy
from core.problems import ConfigError

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    """A CA as a private CA (step-ca, easy-rsa, openssl) makes one: basicConstraints and
    keyUsage on the CA, key identifiers on what it issues."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def fresh(cls, name: str = "Apps CA", *, under: "Authority | None" = None) -> Self:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer = under or None
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer.certificate.subject if issuer else _name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
            )
        signer = issuer.key if issuer else key
        return cls(key, builder.sign(signer, hashes.SHA256()))

    def write(self, path: Path) -> Path:
        path.write_bytes(_pem(self.certificate))
        return path

    def issue(
        self,
        common_name: str | None,
        path: Path | None = None,
        *,
        alt_names: tuple[str, ...] = (),
        starts: datetime.timedelta = -DAY,
        ends: datetime.timedelta = DAY,
        usage: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
        chain: tuple[x509.Certificate, ...] = (),
    ) -> x509.Certificate:
        """A client certificate; with `path`, its key then it (then `chain`) into that file, as
        a client loads it (ssl.SSLContext.load_cert_chain)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name) if common_name else x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + starts)
            .not_valid_after(NOW + ends)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
        )
        if alt_names:
            names = [x509.DNSName(n) for n in alt_names]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        if path is not None:
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.write_bytes(key_pem + _pem(certificate) + b"".join(_pem(c) for c in chain))
        return certificate


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.fresh()


def test_a_certificate_from_the_ca_names_its_holder(authority: Authority, tmp_path: Path) -> None:
    ca = load_client_ca(authority.write(tmp_path / "ca.pem"))
    leaf = authority.issue("backup-job", alt_names=("backup.example",))
    assert ca.subject_of([leaf], NOW) == "backup-job"
    # Without a CN, the first subjectAltName; without SAN, the CN alone is enough.
    assert ca.subject_of([authority.issue(None, alt_names=("ci.example",))], NOW) == "ci.example"
    assert ca.subject_of([authority.issue("nightly")], NOW) == "nightly"


def test_a_chain_through_an_intermediate_the_client_sends(tmp_path: Path) -> None:
    root = Authority.fresh("Root")
    intermediate = Authority.fresh("Issuing", under=root)
    ca = load_client_ca(root.write(tmp_path / "root.pem"))
    leaf = intermediate.issue("app")
    assert ca.subject_of([leaf, intermediate.certificate], NOW) == "app"
    with pytest.raises(CertificateRefused):
        ca.subject_of([leaf], NOW)  # the intermediate not sent: no path to the root


def test_another_cas_certificate_is_refused(authority: Authority, tmp_path: Path) -> None:
    ca = load_client_ca(authority.write(tmp_path / "ca.pem"))
    stranger = Authority.fresh("Apps CA")  # the same name, another key
    with pytest.raises(CertificateRefused, match=r"is not valid for ca\.pem"):
        ca.subject_of([stranger.issue("backup-job")], NOW)
    with pytest.raises(CertificateRefused, match="no client certificate"):
        ca.subject_of([], NOW)


def test_expired_and_not_yet_valid_certificates_are_refused(
    authority: Authority, tmp_path: Path
) -> None:
    ca = load_client_ca(authority.write(tmp_path / "ca.pem"))
    expired = authority.issue("old", starts=-3 * DAY, ends=-DAY)
    early = authority.issue("early", starts=DAY, ends=3 * DAY)
    for certificate in (expired, early):
        with pytest.raises(CertificateRefused, match="not valid at validation time"):
            ca.subject_of([certificate], NOW)
    # Validity is judged at the time given: the same certificate, two days on, is good.
    assert ca.subject_of([early], NOW + 2 * DAY) == "early"


def test_a_certificate_for_servers_only_is_refused(authority: Authority, tmp_path: Path) -> None:
    ca = load_client_ca(authority.write(tmp_path / "ca.pem"))
    server = authority.issue("web", usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
    with pytest.raises(CertificateRefused, match="EKU"):
        ca.subject_of([server], NOW)


def test_a_name_that_cannot_go_into_a_header_is_refused(authority: Authority) -> None:
    with pytest.raises(CertificateRefused, match="printable ASCII"):
        subject_name(authority.issue("app\r\nX-Injected: 1"))
    with pytest.raises(CertificateRefused, match="names no one"):
        subject_name(authority.issue(None))


def test_a_bundle_that_cannot_serve_says_why(authority: Authority, tmp_path: Path) -> None:
    with pytest.raises(ClientCaError, match="cannot read"):
        load_client_ca(tmp_path / "missing.pem")
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(ClientCaError, match="holds no PEM certificate"):
        load_client_ca(tmp_path / "empty.pem")
    (tmp_path / "leaf.pem").write_bytes(_pem(authority.issue("app")))
    with pytest.raises(ClientCaError, match="is not a CA certificate"):
        load_client_ca(tmp_path / "leaf.pem")
    bundle = tmp_path / "two.pem"
    bundle.write_bytes(_pem(authority.certificate) + _pem(Authority.fresh("Other").certificate))
    assert len(load_client_ca(bundle).certificates) == 2


def _policy(client_ca: str) -> str:
    return f"""\
version: 1
resources:
  jobs:
    host: jobs.example
    auth: {{client_ca: {client_ca}}}
    targets: [{{host: 192.0.2.1, port: 80}}]
  wiki:
    host: wiki.example
    targets: [{{host: 192.0.2.2, port: 80}}]
"""


def test_a_policy_reads_client_ca_beside_itself(
    authority: Authority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pki").mkdir()
    authority.write(tmp_path / "pki" / "apps.pem")
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("pki/apps.pem"))
    monkeypatch.chdir(tmp_path / "pki")  # not the working directory: policy.yaml's
    policy = load_policy(path, Capabilities())
    ca = policy.resources["jobs"].client_ca
    assert ca is not None
    assert ca.path == tmp_path / "pki" / "apps.pem"
    assert ca.subject_of([authority.issue("job")], NOW) == "job"
    assert policy.resources["wiki"].client_ca is None


def test_a_client_ca_that_does_not_load_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("nowhere.pem"))
    with pytest.raises(ConfigError) as refused:
        load_policy(path, Capabilities())
    assert f"{path}:5: resources.jobs.auth.client_ca: " in str(refused.value)
    assert "nowhere.pem: cannot read" in str(refused.value)
