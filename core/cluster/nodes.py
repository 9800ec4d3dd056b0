"""`warren nodes`: the nodes sharing storage, as their heartbeats say (core.cluster.registry);
`warren nodes remove NAME` takes one out (its keys are trusted by no node from then on), and
`warren nodes readmit NAME` lifts that before it expires.

With `storage: memory://` there is no cluster: the listing shows this node alone, from its files,
and says so.
"""

import asyncio
import importlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.cluster.documents import Kind, current, digest_of
from core.cluster.push import with_storage
from core.cluster.records import DocumentState, NodeRecord
from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.settings import Settings

nodes_app = typer.Typer(
    help="The nodes sharing storage: list, remove, readmit.", invoke_without_command=True
)
Name = Annotated[str, typer.Argument(help="The node's name (node.name in its warren.yaml).")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document, for scripts.")]


def register(app: typer.Typer) -> None:
    app.add_typer(nodes_app, name="nodes", rich_help_panel="Run")


@nodes_app.callback()
def nodes(
    context: typer.Context, config: ConfigOption = DEFAULT_CONFIG, as_json: AsJson = False
) -> None:
    """Every live node: its URL, WireGuard key, last heartbeat, the policy and users it serves
    (and whether they are the pushed ones), the sites online through it."""
    if context.invoked_subcommand is not None:
        return
    settings = _settings(config)
    from core.storage import is_shared

    report = _cluster_report(settings) if is_shared(settings.storage) else _alone(settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


@nodes_app.command("remove")
def remove(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Take a node out: its record and published keys go at once, so no node trusts a token it
    signed; its name is refused for a session's lifetime (session.ttl)."""
    from core.cluster import registry

    settings = _shared(config)
    keep = settings.session.ttl.total_seconds()
    had = with_storage(settings, lambda redis: registry.remove(redis, name, keep))
    state = "was live" if had else "had no live record or keys"
    typer.echo(f"removed {name} ({state}); its keys are trusted by no node")


@nodes_app.command("readmit")
def readmit(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Let a removed node back in (then restart its gateway, which stopped heartbeating)."""
    from core.cluster import registry

    settings = _shared(config)
    if not with_storage(settings, lambda redis: registry.readmit(redis, name)):
        typer.echo(f"{name} was not removed")
        return
    typer.echo(f"{name} may join again; restart its gateway to publish its record and keys")


def _settings(config: Path) -> "Settings":
    from core.problems import ConfigError
    from core.settings import load_settings

    try:
        return load_settings(config)
    except ConfigError as error:
        fail_with(error)


def _shared(config: Path) -> "Settings":
    from core.storage import is_shared

    settings = _settings(config)
    if not is_shared(settings.storage):
        typer.secho(
            f"error: {config}: storage is memory://, so no other node shares it", err=True, fg="red"
        )
        raise typer.Exit(1)
    return settings


def _cluster_report(settings: "Settings") -> dict[str, Any]:
    from core.cluster.registry import live_nodes, removed_names

    async def read(redis: "Redis") -> dict[str, Any]:
        records = await live_nodes(redis)
        pushed: dict[Kind, str | None] = {}
        for kind in Kind:
            document = await current(redis, kind)
            pushed[kind] = None if document is None else document.digest
        return {
            "shared": True,
            "nodes": [_entry(record, pushed) for record in records],
            "removed": sorted(await removed_names(redis)),
            "pushed": {str(kind): digest for kind, digest in pushed.items()},
        }

    report = with_storage(settings, read)
    report["warnings"] = _persistence_warnings(settings)
    return report


def _entry(record: NodeRecord, pushed: dict[Kind, str | None]) -> dict[str, Any]:
    entry: dict[str, Any] = record.model_dump(mode="json", exclude={"instance"})
    entry["age"] = round(max(0.0, time.time() - record.heartbeat), 1)
    for kind, state in ((Kind.POLICY, record.policy), (Kind.USERS, record.users)):
        entry[str(kind)]["local_edit"] = _local_edit(state, pushed[kind])
    return entry


def _local_edit(state: DocumentState, pushed: str | None) -> bool:
    """Serving something other than the pushed copy: an edit by hand, or a push it refused."""
    return pushed is not None and state.digest != pushed


def _persistence_warnings(settings: "Settings") -> list[str]:
    """What core.persistence says about the storage keeping revocations over a restart."""
    try:
        module = importlib.import_module("core.persistence")
    except ImportError:
        return []
    try:
        problem = asyncio.run(module.persistence_problem(settings.storage))
    except Exception as error:  # a warning that cannot be worked out is not a reason to fail
        return [f"could not ask storage how it persists: {error}"]
    return [] if problem is None else [str(problem)]


def _alone(settings: "Settings") -> dict[str, Any]:
    from core.cluster.facts import wireguard_facts

    node = {
        "name": settings.node_name,
        "url": settings.node.url,
        "wireguard": wireguard_facts(settings).model_dump(),
        "policy": {"digest": _file_digest(settings.policy_file), "error": None},
        "users": {"digest": _file_digest(settings.users_file), "error": None},
        "sites_online": None,
        "age": None,
    }
    note = "storage is memory://, not shared: this node alone, from its files"
    return {
        "shared": False,
        "nodes": [node],
        "removed": [],
        "pushed": {},
        "warnings": [],
        "note": note,
    }


def _file_digest(path: Path) -> str | None:
    try:
        return digest_of(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("node", "url", "wireguard", "heartbeat", "policy", "users", "sites online")
    for node in report["nodes"]:
        table.add_row(
            node["name"] + ("" if node.get("ready", True) else " (not ready)"),
            node["url"] or "-",
            _short(node["wireguard"]["public_key"]),
            "-" if node["age"] is None else f"{node['age']:g} s ago",
            _document(node["policy"]),
            _document(node["users"]),
            "-" if node["sites_online"] is None else ", ".join(node["sites_online"]) or "none",
        )
    console = Console(width=None if sys.stdout.isatty() else 200)  # a pipe: no wrapping at 80
    console.print(table)
    if report["shared"] and not report["nodes"]:
        console.print("no live node: none has sent a heartbeat in the last 10 s")
    for name in report["removed"]:
        console.print(f"removed: {name} (its keys are trusted by no node)")
    if report.get("note"):
        console.print(f"note: {report['note']}", markup=False)
    for warning in report["warnings"]:
        console.print(f"warning: {warning}", style="yellow", markup=False)


def _short(key: str | None) -> str:
    return "-" if not key else key[:8] + "…"


def _document(state: dict[str, Any]) -> str:
    text = state["digest"] or "-"
    if state.get("local_edit"):
        text += " (local edit)"
    if state["error"]:
        text += f"\nrefused: {state['error'].splitlines()[0][:80]}"
    return text
