"""`warren policy history|show` and `warren users history|show`: the versions storage keeps of
what was pushed (core.cluster.documents), to look back or to push an older one again."""

import time
from typing import TYPE_CHECKING, Annotated

import typer

from core.cluster.documents import Kind, PushedDocument
from core.cluster.push import shared_settings, with_storage
from core.commandline import DEFAULT_CONFIG, ConfigOption

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.settings import Settings

Version = Annotated[int | None, typer.Argument(help="A kept version (default: the current one).")]


def policy_history(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """The pushed versions storage keeps (the last 10): version, digest, when, from which node."""
    _history(shared_settings(config), Kind.POLICY)


def policy_show(version: Version = None, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Print a pushed version's text: to look at it, or to push it again as a rollback."""
    _show(shared_settings(config), Kind.POLICY, version)


def users_history(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """The pushed versions storage keeps (the last 10): version, digest, when, from which node."""
    _history(shared_settings(config), Kind.USERS)


def users_show(version: Version = None, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Print a pushed version's text (it holds password hashes: keep it private)."""
    _show(shared_settings(config), Kind.USERS, version)


def _history(settings: "Settings", kind: Kind) -> None:
    from core.cluster.documents import HISTORY, at_version, current

    async def read(redis: "Redis") -> list[PushedDocument]:
        last = await current(redis, kind)
        if last is None:
            return []
        kept = [await at_version(redis, kind, v) for v in range(last.version, 0, -1)[:HISTORY]]
        return [document for document in kept if document is not None]

    documents = with_storage(settings, read)
    if not documents:
        typer.echo(f"no {kind} file was pushed yet")
    for document in documents:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(document.pushed_at))
        typer.echo(f"{document.version:>5}  {document.digest}  {when}  {document.pushed_by}")


def _show(settings: "Settings", kind: Kind, version: int | None) -> None:
    from core.cluster.documents import at_version, current

    async def read(redis: "Redis") -> PushedDocument | None:
        return await (current(redis, kind) if version is None else at_version(redis, kind, version))

    document = with_storage(settings, read)
    if document is None:
        which = "no version" if version is None else f"version {version} is not kept"
        typer.secho(f"error: {kind}: {which}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(document.text, nl=False)
