"""The cluster's commands on the `warren` command line, registered in one place: `warren nodes`,
`warren policy|users push`, and their `history` and `show`."""

import typer

from core.cluster import history, nodes, push


def register(app: typer.Typer) -> None:
    for group, kind in ((push.policy_app, "policy"), (push.users_app, "users")):
        group.command("history")(getattr(history, f"{kind}_history"))
        group.command("show")(getattr(history, f"{kind}_show"))
    push.register(app)
    nodes.register(app)
