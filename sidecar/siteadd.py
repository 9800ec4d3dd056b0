"""`warren site add NAME`: a new site secret, its hash written into policy.yaml.

The file is edited as text, so the admin's formatting, order and comments stay as they were: the
entry is added at the end of the top-level `sites:` block (or a block is appended). The result
must validate before it replaces the file; when the file's shape is not one this edit
understands, nothing is written and the line to add is printed instead.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from core.files import write_atomically
from core.policy.check import Capabilities
from core.policy.load import load_policy, parse_policy
from core.problems import ConfigError
from core.tunnels import new_site_secret

_NAME = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,62})$")
_BLOCK = re.compile(r"^sites:[ \t]*(#.*)?$")
_EMPTY_FLOW = re.compile(r"^sites:[ \t]*\{\s*\}[ \t]*(#.*)?$")


class SiteAddError(Exception):
    pass


@dataclass(frozen=True)
class NewSite:
    secret: str
    entry: str  # the line for policy.yaml, as written (or to write)
    edited: bool


def check_output(path: Path) -> None:
    """Where `-o` would write the secret: a new file in an existing directory. An existing file
    may hold another site's secret; it is never replaced."""
    if path.exists() or path.is_symlink():
        raise SiteAddError(f"{path} exists; choose a new file (a secret is never overwritten)")
    if not path.parent.is_dir():
        raise SiteAddError(f"{path.parent} is not a directory")


def add_site(policy_path: Path, name: str, capabilities: Capabilities, edit: bool) -> NewSite:
    if not _NAME.match(name):
        raise SiteAddError(
            f"{name!r} is not a site name: lower-case letters, digits, - and _, "
            "starting with a letter or digit, at most 63 characters"
        )
    path = policy_path.resolve()  # a symlinked file is edited where it lives
    try:
        policy = load_policy(path, capabilities)
    except ConfigError as error:
        raise SiteAddError(f"fix policy.yaml first:\n{error}") from None
    if name in policy.model.sites:
        raise SiteAddError(
            f"site {name!r} exists; to give it a new secret, remove its line and add it again"
        )
    secret, digest = new_site_secret()
    text = path.read_text(encoding="utf-8")
    edited_text, indent = _insert(text, name, digest)
    entry = f'{" " * indent}{name}: {{secret_sha256: "{digest}"}}'
    if not edit or edited_text is None:
        return NewSite(secret, entry, edited=False)
    try:
        check = parse_policy(edited_text, capabilities, path)
    except ConfigError:
        return NewSite(secret, entry, edited=False)  # our edit misread the file: leave it alone
    if name not in check.model.sites:
        return NewSite(secret, entry, edited=False)
    write_atomically(path, edited_text.encode(), mode=path.stat().st_mode & 0o777)
    return NewSite(secret, entry, edited=True)


def _insert(text: str, name: str, digest: str) -> tuple[str | None, int]:
    """The text with the entry added, and the entry's indentation; None when unsure."""
    lines = text.splitlines(keepends=True)
    value = f'{name}: {{secret_sha256: "{digest}"}}\n'
    for index, line in enumerate(lines):
        bare = line.rstrip("\r\n")
        if _EMPTY_FLOW.match(bare):
            lines[index] = "sites:\n"
            lines.insert(index + 1, "  " + value)
            return "".join(lines), 2
        if re.match(r"^sites\s*:", bare) and not _BLOCK.match(bare):
            return None, 2  # some other flow style: not ours to rewrite
        if _BLOCK.match(bare):
            last, indent = index, 0
            for position in range(index + 1, len(lines)):
                following = lines[position].rstrip("\r\n")
                stripped = following.lstrip(" ")
                if not stripped or stripped.startswith("#"):
                    continue
                if len(following) == len(stripped):
                    break  # the next top-level key
                indent = indent or len(following) - len(stripped)
                last = position
            indent = indent or 2
            if not lines[last].endswith("\n"):
                lines[last] += "\n"
            lines.insert(last + 1, " " * indent + value)
            return "".join(lines), indent
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}sites:\n  {value}", 2
