"""`warren token`: bearer tokens for native apps (core.auth.apptokens), made, listed, revoked.

`create` prints the token once; nothing can show it again (only a digest is kept). The listing
is one line per token under a header, columns separated by two spaces: ID (what `revoke`
takes), USER, RESOURCE, CREATED and EXPIRES (UTC, ISO 8601), NAME (last: it may hold spaces).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from authportal.admin import fail, print_table, refusals, settings_of, utc_text, with_state
from core.commandline import DEFAULT_CONFIG, ConfigOption

if TYPE_CHECKING:
    from core.auth.apptokens import AppToken


def token_create(
    user: Annotated[str, typer.Option("--user", help="Whose token: a users.yaml account.")],
    resource: Annotated[str, typer.Option("--resource", help="The one resource it opens.")],
    expires: Annotated[str, typer.Option(help="How long it works: 30d, 90d (at most 400d).")],
    name: Annotated[str, typer.Option(help="What it is for, e.g. the app or device.")] = "",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Make a token an app sends as `Authorization: Bearer TOKEN` to one resource; printed
    once."""
    from authportal import manage
    from core.fields import parse_duration

    settings = settings_of(config)
    try:
        lifetime = parse_duration(expires)
    except ValueError as error:
        fail(str(error), 2)
    with refusals():
        text, record = with_state(
            settings, lambda kv: manage.create_token(settings, kv, user, resource, lifetime, name)
        )
    typer.echo(text)
    typer.echo(
        f"token {record.token_id} for {user} on {resource}, until {utc_text(record.expires)}; "
        "it is not shown again",
        err=True,
    )


def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """List tokens not expired or revoked: id, user, resource, created, expires, name."""
    from authportal import manage

    settings = settings_of(config)
    records = with_state(settings, lambda kv: manage.active_tokens(kv, user))
    rows = [("ID", "USER", "RESOURCE", "CREATED", "EXPIRES", "NAME")]
    rows += [_row(record) for record in records]
    print_table(rows)


def _row(record: "AppToken") -> tuple[str, str, str, str, str, str]:
    return (
        record.token_id,
        record.user,
        record.resource,
        utc_text(record.created),
        utc_text(record.expires),
        record.name or "-",
    )


def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="From `warren token list`.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """End a token: refused on the next request on every gateway sharing the storage."""
    from authportal import manage

    settings = settings_of(config)
    with refusals():
        record = with_state(settings, lambda kv: manage.revoke_token(kv, token_id))
    typer.echo(f"revoked token {token_id} of {record.user} on {record.resource}")
