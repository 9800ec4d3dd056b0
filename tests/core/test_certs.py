"""Certificate files as the gateway and `warren check` open them (core.certs)."""

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from core.certs import (
    ACME_CERTIFICATES,
    CertificateError,
    NodeCertificates,
    load_certificate,
    name_covers,
    uncovered,
)
from core.problems import ConfigError
from tests.support.tls import LocalCa


@pytest.fixture(scope="module")
def ca() -> LocalCa:
    return LocalCa.fresh()


def test_a_file_with_key_and_chain_opens(ca: LocalCa, tmp_path: Path) -> None:
    ca.issue(["App.Example.com", "127.0.0.1"], tmp_path / "a.pem")
    certificate = load_certificate(tmp_path / "a.pem")
    assert certificate.names == ("app.example.com", "127.0.0.1")
    assert len(certificate.chain) == 2  # the leaf, then the CA
    assert certificate.covers("APP.example.com.")
    assert not certificate.covers("example.com")
    assert not certificate.expired()


def test_certbots_two_files_open(ca: LocalCa, tmp_path: Path) -> None:
    ca.issue(["a.example.com"], tmp_path / "fullchain.pem", key_path=tmp_path / "privkey.pem")
    certificate = load_certificate(tmp_path / "fullchain.pem", tmp_path / "privkey.pem")
    assert certificate.names == ("a.example.com",)


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p, ca: None, "cannot be read: No such file or directory"),
        (lambda p, ca: p.write_text("hello"), "holds no PEM certificate"),
        (
            lambda p, ca: p.write_bytes(ca.certificate.public_bytes(Encoding.PEM)),
            "holds no private key",
        ),
    ],
)
def test_a_file_that_cannot_be_served_says_why(
    ca: LocalCa, tmp_path: Path, write: Callable[[Path, LocalCa], object], reason: str
) -> None:
    path = tmp_path / "c.pem"
    write(path, ca)
    with pytest.raises(CertificateError, match=reason) as raised:
        load_certificate(path)
    assert str(path) in str(raised.value)


def test_a_key_that_is_not_the_certificates_is_refused(ca: LocalCa, tmp_path: Path) -> None:
    ca.issue(["a.example.com"], tmp_path / "a.pem", key_path=tmp_path / "a.key")
    ca.issue(["b.example.com"], tmp_path / "b.pem", key_path=tmp_path / "b.key")
    with pytest.raises(CertificateError, match="the private key is not the certificate's"):
        load_certificate(tmp_path / "a.pem", tmp_path / "b.key")


def test_expiry_is_known(ca: LocalCa, tmp_path: Path) -> None:
    ca.issue(["a.example.com"], tmp_path / "old.pem", days=-1)
    certificate = load_certificate(tmp_path / "old.pem")
    assert certificate.expired()
    assert not certificate.expired(certificate.not_after - datetime.timedelta(seconds=1))


def test_a_wildcard_stands_for_one_label() -> None:
    assert name_covers("*.example.com", "app.example.com")
    assert not name_covers("*.example.com", "example.com")
    assert not name_covers("*.example.com", "a.b.example.com")
    assert not name_covers("*.example.com", ".example.com")


def test_uncovered_hosts_are_named(ca: LocalCa, tmp_path: Path) -> None:
    ca.issue(["*.example.com", "example.com"], tmp_path / "w.pem")
    held = [load_certificate(tmp_path / "w.pem")]
    hosts = ["example.com", "app.example.com", "a.b.example.com", "*.example.com", "*.other.org"]
    assert list(uncovered(held, hosts)) == ["a.b.example.com", "*.other.org"]


def test_node_certificates_follow_their_files(ca: LocalCa, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ca.issue(["admin.example.com"], tmp_path / "admin.pem")
    node = NodeCertificates.open([(tmp_path / "admin.pem", None)], state)
    seen: list[int] = []
    node.subscribe(lambda served: seen.append(len(served)))
    assert [c.names for c in node.current] == [("admin.example.com",)]
    assert not node.refresh()  # nothing changed

    ca.issue(["acme.example.com"], state / ACME_CERTIFICATES / "acme.example.com.pem")
    assert node.refresh()
    assert seen == [2]
    assert [c.names[0] for c in node.current] == ["admin.example.com", "acme.example.com"]

    before = node.current[0]
    (tmp_path / "admin.pem").write_text("half a file")
    assert not node.refresh()  # the last good certificate stays
    assert node.current[0] is before
    assert "holds no PEM certificate" in node.errors[tmp_path / "admin.pem"]
    assert any("error" in entry for entry in node.status())

    ca.issue(["admin.example.com"], tmp_path / "admin.pem")
    assert node.refresh()
    assert not node.errors
    assert node.current[0].serial != before.serial


def test_an_admin_file_that_does_not_open_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"warren.yaml: certs\[0\]: .*cannot be read"):
        NodeCertificates.open([(tmp_path / "none.pem", None)], tmp_path, tmp_path / "warren.yaml")


def test_only_the_admins_own_certificates_count_as_held(ca: LocalCa, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ca.issue(["*.example.com"], tmp_path / "admin.pem")
    node = NodeCertificates.open([(tmp_path / "admin.pem", None)], state)
    ca.issue(["acme.example.org"], state / ACME_CERTIFICATES / "acme.example.org.pem")
    node.refresh()
    assert node.admin_covers("app.example.com")
    assert node.admin_covers("*.example.com")
    assert not node.admin_covers("acme.example.org")  # ACME's own, renewed by ACME
