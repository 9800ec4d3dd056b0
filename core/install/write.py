"""Writing what `warren init` rendered: nothing unless every file may be written, each file
replaced atomically with its mode (core.files), and owned so that the services' account reads
what it must and nothing more."""

import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.files import replacing
from core.install.answers import InitError

# root:root, root:ACCOUNT (read by the services), ACCOUNT:ACCOUNT (users.yaml: `warren user`
# keeps the owner of the file it replaces, and the file stays 0600).
type Owner = Literal["root", "group", "service"]


@dataclass(frozen=True)
class NodeFile:
    path: Path
    text: str
    mode: int
    owner: Owner = "root"
    secret: bool = False  # written only where nothing is (unless --force)


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def service_account(user: str) -> Account | None:
    """The services' account, when it exists and this process may give files to it."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return Account(user, entry.pw_uid, entry.pw_gid)


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    paths = list(paths)
    linked = [path for path in paths if path.is_symlink()]
    if linked:  # a masked unit is a link to /dev/null: never written through
        raise InitError(f"{', '.join(map(str, linked))}: a symbolic link; remove it first")
    found = [str(path) for path in paths if path.exists()]
    if found and not force:
        raise InitError(
            f"{', '.join(found)} already there; nothing was written. Pass --force to replace "
            "them (users.yaml keeps its other users)"
        )


def refuse_unwritable(directories: Iterable[Path]) -> None:
    for directory in directories:
        nearest = directory
        while not nearest.exists() and nearest != nearest.parent:
            nearest = nearest.parent
        if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
            raise InitError(
                f"cannot write into {nearest}; run as root, or choose --dir and --units-dir"
            )


def make_directory(path: Path, mode: int, owner: Owner, account: Account | None) -> None:
    """Its mode and owner are set only when it is made here: an existing one is the admin's."""
    if path.is_dir():
        return
    path.mkdir(mode=mode, parents=True)
    path.chmod(mode)  # mkdir's mode goes through the umask
    hand_over(path, owner, account)


def write_file(file: NodeFile, account: Account | None, force: bool) -> None:
    with replacing(file.path, file.mode, exclusive=file.secret and not force) as temporary:
        temporary.write_text(file.text, encoding="utf-8")
    hand_over(file.path, file.owner, account)


def hand_over(path: Path, owner: Owner, account: Account | None) -> None:
    if account is None or owner == "root":
        return
    os.chown(path, account.uid if owner == "service" else 0, account.gid)
