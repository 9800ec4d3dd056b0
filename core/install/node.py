"""`warren init` from start to end: the answers, the checks that nothing is in the way, the
admin's password, the files, and what is left to do."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from core.auth.users import User
from core.install import admin as admins
from core.install.answers import Answers, Ask, InitError, collect
from core.install.nextsteps import hidden_paths, report
from core.install.render import Paths, node_files, warren_executable
from core.install.write import (
    Account,
    NodeFile,
    hand_over,
    make_directory,
    refuse_existing,
    refuse_unwritable,
    service_account,
    write_file,
)
from core.tunnels import new_site_secret

_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # what useradd and systemd's User= accept


@dataclass(frozen=True)
class Request:
    given: Mapping[str, str | None]  # flags, by Answers field
    config_dir: Path
    units_dir: Path
    user: str
    executable: Path | None
    force: bool
    ask: Ask | None  # None: no terminal, every answer from flags or defaults
    password_stdin: bool


class Outcome(NamedTuple):
    written: list[Path]
    warnings: list[str]
    report: str


def initialise(request: Request) -> Outcome:
    answers = collect(request.given, request.ask)
    paths = Paths(
        request.config_dir.absolute(),
        request.units_dir.absolute(),
        warren_executable(request.executable),
        _account_name(request.user),
    )
    secret, digest = new_site_secret()
    files = node_files(answers, paths, secret, digest)
    users_file = paths.config_dir / "users.yaml"
    refuse_existing([users_file, *(file.path for file in files)], request.force)
    refuse_unwritable([paths.config_dir, paths.units_dir])
    password, made_up = _password(request, answers.admin)
    user = admins.admin_user(password, answers.email)
    account = service_account(paths.user)
    written = _write(files, (users_file, answers, user), paths, account, request.force)
    exists = account is not None or _account_exists(paths.user)
    text = report(answers, paths, password if made_up else None, (exists, account is not None))
    return Outcome(written, hidden_paths(paths), text)


def _account_name(user: str) -> str:
    if not _ACCOUNT.match(user):
        raise InitError(f"--user {user!r}: not an account name (lower case, digits, _ and -)")
    return user


def _account_exists(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _password(request: Request, name: str) -> tuple[str, bool]:
    """The admin's password, and whether init made it up (then it is shown once)."""
    if request.password_stdin:
        try:
            return admins.password_from_stdin(), False
        except ValueError as error:
            raise InitError(f"--password-stdin: {error}") from None
    if request.ask is not None:
        return admins.asked_password(name), False
    return admins.generated_password(), True


def _write(
    files: Sequence[NodeFile],
    admin: tuple[Path, Answers, User],
    paths: Paths,
    account: Account | None,
    force: bool,
) -> list[Path]:
    users_file, answers, user = admin
    try:
        make_directory(paths.config_dir, 0o750, "group", account)
        make_directory(paths.site_dir, 0o700, "root", account)
        make_directory(paths.units_dir, 0o755, "root", account)
        admins.add_admin(users_file, answers.admin, user)
        hand_over(users_file, "service", account)
        for file in files:
            write_file(file, account, force)
    except OSError as error:
        raise InitError(
            f"cannot write {error.filename}: {error.strerror}; what was written stays, "
            "run `warren init --force` again once that is fixed"
        ) from None
    return [users_file, *(file.path for file in files)]
