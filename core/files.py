"""Replacing a file so that a crash at any moment leaves either the old contents or the new.

The one way Warren writes a file that another process reads or that must survive a power cut:
users.yaml, signing keys, policy.yaml edits, the sidecar's state and sites.json, the site
agent's key, GeoIP databases, secrets.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def replacing(path: Path, mode: int = 0o600, *, exclusive: bool = False) -> Iterator[Path]:
    """A new, empty temporary file beside `path` for the block to fill, by whatever means (a
    library that writes by name, a download). On a clean exit it is fsynced, given `mode` (and,
    where allowed, the owner of the file it replaces), renamed onto `path`, and the directory is
    fsynced. When the block or any step fails the temporary file is removed and `path` is as it
    was; the temporary file is mode 0600 until the rename, so no one reads a half-written secret.

    A symlink at `path` is followed: the file it points to is replaced where it lives and the
    link stays (policy.yaml symlinked into a checkout is edited in the checkout, not turned into
    a copy). With `exclusive`, `path` must not exist, a symlink included: a file that appears
    meanwhile raises FileExistsError and is left alone (secrets and keys are never overwritten).
    """
    target = path if exclusive else path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        _settle(temporary, target, mode)
        if exclusive:
            os.link(temporary, target)  # unlike a rename, refuses to replace what is there
            temporary.unlink()
        else:
            os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)  # the rename itself survives a power cut


def write_atomically(
    path: Path, data: bytes, mode: int = 0o600, *, exclusive: bool = False
) -> None:
    with replacing(path, mode, exclusive=exclusive) as temporary:
        temporary.write_bytes(data)


def _settle(temporary: Path, target: Path, mode: int) -> None:
    descriptor = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        _keep_owner(descriptor, target)
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def _keep_owner(descriptor: int, target: Path) -> None:
    """`sudo warren user add` must not leave users.yaml readable only by root when the portal
    runs as another account; only root (or the owner itself) may do this, others keep theirs."""
    try:
        old = os.stat(target)
    except FileNotFoundError:
        return
    with suppress(PermissionError):
        os.fchown(descriptor, old.st_uid, old.st_gid)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
