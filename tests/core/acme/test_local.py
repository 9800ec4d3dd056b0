"""What ACME leaves in state_dir (core.acme.local): private modes, an account key never
overwritten, and a certificate file only ever replaced by one that loads."""

from pathlib import Path

import pytest

from core.acme.local import LocalFiles
from core.acme.plan import Wanted
from core.certs import CertificateError
from tests.support.tls import LocalCa

APP = Wanted(("app.example.test",), "http-01")


def pem_for(names: list[str], tmp_path: Path) -> bytes:
    path = tmp_path / f"issued-{names[0]}.pem"
    LocalCa.fresh().issue(names, path)
    return path.read_bytes()


def test_the_account_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path)
    assert files.account_key() is None
    assert files.keep_account_key(b"first key") == b"first key"
    assert files.keep_account_key(b"second key") == b"first key"
    assert files.account_key_path == tmp_path / "acme" / "account.key"
    assert files.account_key_path.stat().st_mode & 0o777 == 0o600
    assert files.directory.stat().st_mode & 0o777 == 0o700


def test_a_certificate_is_one_private_file_named_for_its_first_name(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path)
    assert files.certificate(APP) is None
    saved = files.save(APP, pem_for(["app.example.test"], tmp_path))
    path = tmp_path / "acme" / "certificates" / "app.example.test.pem"
    assert saved.path == path
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # the key, then the chain
    loaded = files.certificate(APP)
    assert loaded is not None
    assert loaded.serial == saved.serial


def test_what_does_not_load_never_replaces_what_does(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path)
    files.save(APP, pem_for(["app.example.test"], tmp_path))
    before = files.path(APP).read_bytes()
    with pytest.raises(CertificateError):
        files.save(APP, b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    assert files.path(APP).read_bytes() == before
    assert [p.name for p in files.certificates.iterdir()] == ["app.example.test.pem"]


def test_a_file_that_no_longer_fits_the_plan_counts_as_missing(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path)
    files.save(APP, pem_for(["other.example.test"], tmp_path))  # under the wrong name
    assert files.certificate(APP) is None
    files.path(APP).write_text("not a certificate")
    assert files.certificate(APP) is None
