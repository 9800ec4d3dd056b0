"""`warren sessions`: the sign-ins active in the shared state, and ending them everywhere.

The listing is one line per sign-in under a header, columns separated by spaces (no value holds
one): USER, SESSION (the id `revoke` takes), STARTED and EXPIRES (UTC, ISO 8601), HOW
(password, password+totp, passkey, identity-provider, email-code, ...: authportal.manage.how),
FROM (the client address at sign-in).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from authportal.admin import fail, print_table, refusals, settings_of, utc_text, with_state
from core.commandline import DEFAULT_CONFIG, ConfigOption

if TYPE_CHECKING:
    from core.auth.sessions import SignInRecord
    from core.settings import Settings

UserOption = Annotated[str | None, typer.Option("--user", help="Only this user's sign-ins.")]


def sessions_list(user: UserOption = None, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List active sign-ins: user, session id, started, expires, how, from where."""
    from authportal import manage

    settings = settings_of(config)
    records = with_state(settings, lambda kv: manage.active_sessions(kv, user))
    rows = [("USER", "SESSION", "STARTED", "EXPIRES", "HOW", "FROM")]
    rows += [_row(record) for record in records]
    print_table(rows)


def _row(record: "SignInRecord") -> tuple[str, str, str, str, str, str]:
    from authportal.manage import how

    return (
        record.user,
        record.session_id,
        utc_text(record.started),
        utc_text(record.expires),
        how(record.methods),
        record.address or "-",
    )


def sessions_revoke(
    session_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="A session id from `warren sessions list`.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="End every sign-in of this user instead.")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """End one sign-in (`revoke ID`) or all of a user's (`revoke --user NAME`): refused on the
    next request on every gateway sharing the storage."""
    if (session_id is None) == (user is None):
        fail("give a session ID or --user NAME (one of them)", 2)
    settings = settings_of(config)
    if session_id is not None:
        _revoke_one(settings, session_id)
    else:
        assert user is not None
        _revoke_all_of(settings, user)


def _revoke_one(settings: "Settings", session_id: str) -> None:
    from authportal import manage

    with refusals():
        record = with_state(settings, lambda kv: manage.revoke_session(kv, session_id))
    typer.echo(f"revoked sign-in {session_id} of {record.user}")


def _revoke_all_of(settings: "Settings", user: str) -> None:
    from authportal import manage

    with refusals():
        count = with_state(settings, lambda kv: manage.revoke_sessions_of(settings, kv, user))
    typer.echo(f"revoked every sign-in of {user} ({count} active)")
