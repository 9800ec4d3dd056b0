"""The portal's sub-commands: `warren portal`, `warren user ...`, `warren sessions ...`,
`warren share`, `warren token ...`, `warren keys`, `warren hash`. Kept light: heavy imports
happen inside each command."""

from pathlib import Path

import typer

from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with

users_app = typer.Typer(help="Manage the portal's users (users.yaml).", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the signing keys in state_dir/keys.", no_args_is_help=True)
sessions_app = typer.Typer(
    help="Active sign-ins in the shared state; end them everywhere.", no_args_is_help=True
)
tokens_app = typer.Typer(
    help="Bearer tokens for native apps: make, list, revoke.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    from authportal import admin, apptokens, signins

    app.command(rich_help_panel="Run")(portal)
    app.add_typer(users_app, name="user", rich_help_panel="Sign-in")
    app.add_typer(sessions_app, name="sessions", rich_help_panel="Sign-in")
    app.add_typer(tokens_app, name="token", rich_help_panel="Sign-in")
    app.add_typer(keys_app, name="keys", rich_help_panel="Sign-in")
    app.command(rich_help_panel="Sign-in")(admin.share)
    app.command(name="hash", rich_help_panel="Sign-in")(admin.hash_secret)
    users_app.command("add")(admin.user_add)
    users_app.command("passwd")(admin.user_passwd)
    users_app.command("del")(admin.user_del)
    users_app.command("2fa")(admin.user_2fa)
    users_app.command("list")(admin.user_list)
    users_app.command("groups")(admin.user_groups)
    users_app.command("disable")(admin.user_disable)
    users_app.command("enable")(admin.user_enable)
    users_app.command("link")(admin.user_link)
    users_app.command("unlink")(admin.user_unlink)
    users_app.command("passkeys")(admin.user_passkeys)
    sessions_app.command("list")(signins.sessions_list)
    sessions_app.command("revoke")(signins.sessions_revoke)
    tokens_app.command("create")(apptokens.token_create)
    tokens_app.command("list")(apptokens.token_list)
    tokens_app.command("revoke")(apptokens.token_revoke)
    keys_app.command("rotate")(admin.keys_rotate)
    keys_app.command("list")(admin.keys_list)


def portal(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the sign-in portal (listens on portal.listen; reached at public_url)."""
    from authportal.app import serve
    from core.problems import ConfigError

    try:
        raise typer.Exit(serve(Path(config)))
    except ConfigError as error:
        fail_with(error)
    except ValueError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
