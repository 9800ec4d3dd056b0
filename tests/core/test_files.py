"""core.files: the one way a file is replaced — contents, mode, owner, and nothing lost on failure."""

import os
import stat
import tempfile
from pathlib import Path

import pytest

from core.files import replacing, write_atomically
from tests.support.ci import in_ci

NOBODY = 65534


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_has_the_contents_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "made" / "here" / "users.yaml"
    write_atomically(path, b"users: {}\n")
    assert path.read_bytes() == b"users: {}\n"
    assert mode_of(path) == 0o600
    assert leftovers(path.parent) == []


def test_a_replaced_file_gets_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    path.write_bytes(b"old")
    path.chmod(0o600)
    write_atomically(path, b"new", mode=0o644)
    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o644


def test_the_block_may_write_by_name_and_stream(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-ASN.mmdb"
    with replacing(path, 0o644) as temporary:
        assert temporary.parent == tmp_path
        assert mode_of(temporary) == 0o600  # private while half-written
        with open(temporary, "wb") as handle:
            for chunk in (b"a" * 1000, b"b" * 1000):
                handle.write(chunk)
        assert not path.exists()  # nothing shows before the block ends
    assert path.read_bytes() == b"a" * 1000 + b"b" * 1000
    assert mode_of(path) == 0o644


def test_a_producer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_bytes(b"the users before")

    def produce(temporary: Path) -> None:
        temporary.write_bytes(b"half of the new")
        raise ValueError("half way")

    with pytest.raises(ValueError, match="half way"), replacing(path) as temporary:
        produce(temporary)
    assert path.read_bytes() == b"the users before"
    assert leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # a directory in the way: the rename is refused after the data is written
    with pytest.raises(IsADirectoryError):
        write_atomically(path, b"{}")
    assert path.is_dir()
    assert leftovers(tmp_path) == []


def write_as_nobody(path: Path, data: bytes) -> int:
    """The exit code of a child that tries, as an account the directory does not let write:
    13 for PermissionError, 0 when the write went through."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            write_atomically(path, data)
            code = 0
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_directory_that_cannot_be_written_loses_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # Root writes into read-only directories: the write runs as nobody, in a directory of
        # its own that nobody may enter but not write (tmp_path's parents let nobody in).
        with tempfile.TemporaryDirectory() as base:
            directory = Path(base)
            directory.chmod(0o755)
            path = directory / "policy.yaml"
            path.write_bytes(b"version: 1\n")
            path.chmod(0o666)  # the file itself is writable: only the directory says no
            assert write_as_nobody(path, b"new") == 13
            assert path.read_bytes() == b"version: 1\n"
            assert leftovers(directory) == []
        return
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\n")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            write_atomically(path, b"new")
    finally:
        tmp_path.chmod(0o755)
    assert path.read_bytes() == b"version: 1\n"
    assert leftovers(tmp_path) == []


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    real = checkout / "policy.yaml"
    real.write_bytes(b"version: 1\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    link = etc / "policy.yaml"
    link.symlink_to(real)
    write_atomically(link, b"version: 1\nsites: {}\n", mode=0o644)
    assert link.is_symlink()
    assert real.read_bytes() == b"version: 1\nsites: {}\n"
    assert leftovers(etc) == []
    assert leftovers(checkout) == []


def test_a_dangling_symlink_makes_the_file_it_names(tmp_path: Path) -> None:
    link = tmp_path / "users.yaml"
    link.symlink_to(tmp_path / "elsewhere" / "users.yaml")
    write_atomically(link, b"users: {}\n")
    assert link.is_symlink()
    assert (tmp_path / "elsewhere" / "users.yaml").read_bytes() == b"users: {}\n"


def test_exclusive_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "home.secret"
    write_atomically(path, b"first\n", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomically(path, b"second\n", exclusive=True)
    assert path.read_bytes() == b"first\n"
    link = tmp_path / "office.secret"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_atomically(link, b"secret\n", exclusive=True)
    assert not (tmp_path / "nowhere").exists()
    assert leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI must run this test as root (it gives a file to another account)")
        pytest.skip("only root may give a file to another account")
    path = tmp_path / "users.yaml"
    path.write_bytes(b"old")
    os.chown(path, NOBODY, NOBODY)
    write_atomically(path, b"new")
    assert (path.stat().st_uid, path.stat().st_gid) == (NOBODY, NOBODY)
    assert mode_of(path) == 0o600
