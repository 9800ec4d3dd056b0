"""`warren policy push FILE` and `warren users push FILE`: one file for every node sharing
storage. The file is validated here as this node would load it and stored only if it does
(core.cluster.documents); then every live node's heartbeat is watched until it says it took the
new copy, or refused it and why (core.cluster.sync does the taking on each node).

`warren user ...` pushes the users.yaml it just wrote the same way (`push_after_local_change`).
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from core.cluster.documents import Kind, PushedDocument
from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.cluster.records import DocumentState, NodeRecord
    from core.settings import Settings

policy_app = typer.Typer(help="policy.yaml for every node sharing storage.", no_args_is_help=True)
users_app = typer.Typer(help="users.yaml for every node sharing storage.", no_args_is_help=True)

File = Annotated[Path, typer.Argument(help="The file to validate and push.")]
Wait = Annotated[
    float, typer.Option(help="Seconds to wait for every live node to take it (0: do not wait).")
]
WAIT_SECONDS = 5.0


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy", rich_help_panel="Policy")
    app.add_typer(users_app, name="users", rich_help_panel="Sign-in")


@policy_app.command("push")
def policy_push(
    file: File, config: ConfigOption = DEFAULT_CONFIG, wait: Wait = WAIT_SECONDS
) -> None:
    """Validate FILE as this node loads a policy, store it for every node sharing storage, and
    say which nodes took it and which refused it (exit 1 if any did not take it)."""
    from core.commandline import node_capabilities
    from core.policy.limitchecks import located_warnings
    from core.policy.load import build_policy
    from core.problems import ConfigError
    from core.yamlfile import load_yaml

    settings = shared_settings(config)
    try:
        text, data = load_yaml(file)
        capabilities = node_capabilities(config)
        policy = build_policy(text, data, file, capabilities)
    except ConfigError as error:
        fail_with(error)  # nothing is stored
    for warning in located_warnings(policy.model, policy.source, sign_in=capabilities.sign_in):
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)  # as `warren check`
    _push_and_report(settings, Kind.POLICY, text, wait)


@users_app.command("push")
def users_push(
    file: File, config: ConfigOption = DEFAULT_CONFIG, wait: Wait = WAIT_SECONDS
) -> None:
    """Validate FILE as users.yaml, store it for every node sharing storage, and say which nodes
    took it (exit 1 if any did not). Their users' sessions are not ended: `warren user del` or
    `warren sessions revoke` does that."""
    from core.auth.users import parse_users
    from core.problems import ConfigError
    from core.yamlfile import load_yaml

    settings = shared_settings(config)
    try:
        text, _ = load_yaml(file)
        users = parse_users(text, file)
    except ConfigError as error:
        fail_with(error)
    typer.echo(f"{file}: ok ({len(users.users)} users)")
    _push_and_report(settings, Kind.USERS, text, wait)


def catch_up_before_local_change(settings: "Settings") -> None:
    """Before `warren user ...` changes users.yaml here: take a newer pushed copy first, as the
    node's gateway would (core.cluster.sync), so a node that missed a push (its gateway down)
    does not push its stale file back over the other nodes' change. Storage that does not
    answer is said after the change (push_after_local_change)."""
    from redis.exceptions import RedisError

    from core.cluster.sync import DocumentSync, users_adopter
    from core.storage import is_shared

    if not is_shared(settings.storage):
        return

    async def catch_up() -> None:
        redis = client(settings)
        try:
            adopters = {Kind.USERS: users_adopter(settings.users_file)}
            await DocumentSync(redis, adopters, settings.state_dir).check(Kind.USERS)
        finally:
            await redis.aclose()

    with contextlib.suppress(RedisError, OSError):
        asyncio.run(catch_up())


def push_after_local_change(settings: "Settings") -> None:
    """After `warren user ...` changed users.yaml here: the same file to every node sharing
    storage. Storage that does not answer leaves the local change standing, said loudly, and
    exits 1: the other nodes still let in whom this one no longer does."""
    from redis.exceptions import RedisError

    from core.storage import is_shared, redact

    if not is_shared(settings.storage):
        return
    try:
        text = settings.users_file.read_text(encoding="utf-8")
        pushed = asyncio.run(_push(settings, Kind.USERS, text))
    except (RedisError, OSError) as error:
        typer.secho(
            f"warning: users.yaml changed on this node only: storage {redact(settings.storage)} "
            f"did not answer ({error}). Other nodes did not get it; once storage answers, run: "
            f"warren users push {settings.users_file}",
            err=True,
            fg=typer.colors.RED,
            bold=True,
        )
        raise typer.Exit(1) from None
    typer.echo(f"pushed users version {pushed.version} to the nodes sharing storage", err=True)


def shared_settings(config: Path) -> "Settings":
    from core.problems import ConfigError
    from core.settings import load_settings
    from core.storage import is_shared

    try:
        settings = load_settings(config)
    except ConfigError as error:
        fail_with(error)
    if not is_shared(settings.storage):
        typer.secho(
            f"error: {config}: storage is memory://, so this node shares nothing to push to; "
            "edit policy_file / users_file here (the node follows them as always)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    return settings


def _push_and_report(settings: "Settings", kind: Kind, text: str, wait: float) -> None:
    from redis.exceptions import RedisError

    from core.storage import redact

    try:
        pushed, outcomes = asyncio.run(_push_and_wait(settings, kind, text, wait))
    except (RedisError, OSError) as error:
        typer.secho(
            f"error: storage {redact(settings.storage)} did not answer ({error}); nothing was "
            "pushed",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1) from None
    typer.echo(f"pushed {kind} version {pushed.version} ({pushed.digest})")
    if wait <= 0:
        return
    if not outcomes:
        typer.echo("no live node reports in storage yet; each takes it when it comes up")
    for outcome in outcomes:
        typer.echo(outcome.line, err=not outcome.took)
    if not all(outcome.took for outcome in outcomes):
        raise typer.Exit(1)


class Outcome(NamedTuple):
    node: str
    took: bool
    line: str


async def _push(settings: "Settings", kind: Kind, text: str) -> PushedDocument:
    from core.cluster.documents import push

    redis = client(settings)
    try:
        return await push(redis, kind, text, settings.node_name)
    finally:
        await redis.aclose()


async def _push_and_wait(
    settings: "Settings", kind: Kind, text: str, wait: float
) -> tuple[PushedDocument, list[Outcome]]:
    from core.cluster.documents import push

    redis = client(settings)
    try:
        pushed = await push(redis, kind, text, settings.node_name)
        outcomes = await _wait_for_nodes(redis, pushed, wait) if wait > 0 else []
        return pushed, outcomes
    finally:
        await redis.aclose()


async def _wait_for_nodes(redis: "Redis", pushed: PushedDocument, wait: float) -> list[Outcome]:
    """Until every live node's heartbeat says it runs the pushed digest, or refused it (a
    heartbeat written after the push, with an error and another digest), or `wait` is up."""
    from core.cluster.registry import live_nodes

    deadline = time.monotonic() + wait
    while True:
        nodes = await live_nodes(redis)
        outcomes = [(node, _outcome(node, pushed)) for node in nodes]
        if all(outcome is not None for _, outcome in outcomes) or time.monotonic() >= deadline:
            return [outcome or _silent(node, pushed, wait) for node, outcome in outcomes]
        await asyncio.sleep(0.1)


def _state(node: "NodeRecord", kind: Kind) -> "DocumentState":
    return node.policy if kind is Kind.POLICY else node.users


def _outcome(node: "NodeRecord", pushed: PushedDocument) -> Outcome | None:
    state = _state(node, pushed.kind)
    if state.digest == pushed.digest:
        return Outcome(node.name, True, f"{node.name}: took {pushed.kind} {pushed.digest}")
    if state.error and node.heartbeat > pushed.pushed_at:
        serving = state.digest or "its last good copy"
        line = f"{node.name}: refused it, still serving {serving}:\n{state.error}"
        return Outcome(node.name, False, line)
    return None


def _silent(node: "NodeRecord", pushed: PushedDocument, wait: float) -> Outcome:
    serving = _state(node, pushed.kind).digest or "unknown"
    line = f"{node.name}: did not report {pushed.digest} within {wait:g} s (serving {serving})"
    return Outcome(node.name, False, line)


def client(settings: "Settings") -> "Redis":
    from core.storage import redis_client

    return redis_client(settings.storage, socket_connect_timeout=3, socket_timeout=10)


def with_storage[T](settings: "Settings", work: "Callable[[Redis], Awaitable[T]]") -> T:
    """For the cluster's commands: `work` on a short-lived client; storage that does not answer
    is one line and exit 1."""
    from redis.exceptions import RedisError

    from core.storage import redact

    async def run() -> T:
        redis = client(settings)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except (RedisError, OSError) as error:
        typer.secho(
            f"error: storage {redact(settings.storage)} did not answer ({error})",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1) from None
