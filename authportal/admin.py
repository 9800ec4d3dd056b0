"""What admins run: users, share links, keys, hashes. Heavy imports stay inside the commands so
`warren --help` stays fast."""

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from core.cli import DEFAULT_CONFIG, ConfigOption, fail_with

if TYPE_CHECKING:
    from core.settings import Settings

MIN_PASSWORD = 8

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Name = Annotated[str, typer.Argument(help="The user's name (lower case, digits, . _ -).")]


def _settings(config: Path) -> "Settings":
    from core.problems import ConfigError
    from core.settings import load_settings

    try:
        return load_settings(config)
    except ConfigError as error:
        fail_with(error)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _read_secret(from_stdin: bool, what: str = "Password") -> str:
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    return secret


def _new_password(from_stdin: bool) -> str:
    password = _read_secret(from_stdin)
    if len(password) < MIN_PASSWORD:
        _fail(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def _revoke_user(settings: "Settings", name: str) -> None:
    from core.auth import sessions
    from core.auth.kv import open_kv

    async def revoke() -> None:
        kv = open_kv(settings.storage, settings.state_dir)
        try:
            await sessions.revoke_user(kv, name, settings.session.ttl.total_seconds())
        finally:
            await kv.close()

    asyncio.run(revoke())


def user_add(
    name: Name,
    groups: Annotated[str, typer.Option(help="Comma-separated groups, e.g. ops,dev.")] = "",
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Add a user; the password is asked for (or read from stdin) and stored as argon2id."""
    import re

    from pydantic import ValidationError

    from core.auth.users import NAME, User, UsersFile, hash_secret, update

    settings = _settings(config)
    if not re.match(NAME, name):
        _fail("a user name is lower-case letters, digits, '.', '_' and '-' (at most 63)")
    password = _new_password(password_stdin)
    try:
        user = User(
            password=hash_secret(password),
            email=email,
            groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        )
        UsersFile(users={name: user})  # validates the name
    except ValidationError as error:
        _fail(error.errors()[0]["msg"].removeprefix("Value error, "))

    def add(users: UsersFile) -> UsersFile:
        if name in users.users:
            _fail(f"{name} already exists (use `warren user passwd` to change the password)")
        return users.model_copy(update={"users": {**users.users, name: user}})

    update(settings.users_file, add)
    typer.echo(f"added {name} to {settings.users_file}")


def user_passwd(
    name: Name, password_stdin: PasswordStdin = False, config: ConfigOption = DEFAULT_CONFIG
) -> None:
    """Change a user's password; their current sign-ins end."""
    from core.auth.users import UsersFile, hash_secret, load_users, update

    settings = _settings(config)
    if name not in load_users(settings.users_file).users:
        _fail(f"no user {name} in {settings.users_file}")
    hashed = hash_secret(_new_password(password_stdin))

    def change(users: UsersFile) -> UsersFile:
        user = users.users[name].model_copy(update={"password": hashed})
        return users.model_copy(update={"users": {**users.users, name: user}})

    update(settings.users_file, change)
    _revoke_user(settings, name)
    typer.echo(f"changed the password of {name}; their sessions have ended")


def user_del(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Delete a user; their sign-ins end at once, on every resource."""
    from core.auth.users import UsersFile, update

    settings = _settings(config)

    def delete(users: UsersFile) -> UsersFile:
        if name not in users.users:
            _fail(f"no user {name} in {settings.users_file}")
        return users.model_copy(
            update={"users": {k: v for k, v in users.users.items() if k != name}}
        )

    update(settings.users_file, delete)
    _revoke_user(settings, name)
    typer.echo(f"deleted {name}; their sessions have ended")


def user_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List users, their groups and whether two-step verification is on."""
    from core.auth.users import load_users

    settings = _settings(config)
    for name, user in sorted(load_users(settings.users_file).users.items()):
        groups = ",".join(user.groups) or "-"
        second = "2fa" if user.totp else "-"
        typer.echo(f"{name:20} {user.email or '-':30} {groups:20} {second}")


def user_2fa(
    name: Name,
    disable: Annotated[bool, typer.Option("--disable", help="Turn it off instead.")] = False,
    confirm: Annotated[
        bool, typer.Option(help="Ask for a code from the app before saving (recommended).")
    ] = True,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Enrol a user in TOTP two-step verification: prints the otpauth URI and a QR code."""
    import pyotp

    from core.auth.users import UsersFile, load_users, update

    settings = _settings(config)
    if name not in load_users(settings.users_file).users:
        _fail(f"no user {name} in {settings.users_file}")
    secret: str | None = None
    if not disable:
        secret = pyotp.random_base32(32)
        issuer = f"Warren ({_portal_host(settings)})"
        uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)
        typer.echo("Scan this with an authenticator app, or enter the URI by hand:\n")
        _print_qr(uri)
        typer.echo(f"\n{uri}\n")
        if confirm:
            code = typer.prompt("Code the app shows now").strip().replace(" ", "")
            if not pyotp.TOTP(secret).verify(code, valid_window=1):
                _fail("that code does not match; nothing was changed. Run the command again.")

    def change(users: UsersFile) -> UsersFile:
        user = users.users[name].model_copy(update={"totp": secret})
        return users.model_copy(update={"users": {**users.users, name: user}})

    update(settings.users_file, change)
    typer.echo(f"two-step verification {'off' if disable else 'on'} for {name}")


def _portal_host(settings: "Settings") -> str:
    from urllib.parse import urlsplit

    return urlsplit(settings.public_url).hostname or "warren" if settings.public_url else "warren"


def _print_qr(data: str) -> None:
    import io

    import qrcode

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    buffer = io.StringIO()
    code.print_ascii(out=buffer, invert=True)
    typer.echo(buffer.getvalue())


def share(
    words: Annotated[
        list[str],
        typer.Argument(help="RESOURCE to make a link, or: revoke LINK-ID", metavar="RESOURCE"),
    ],
    expires: Annotated[str, typer.Option(help="How long the link works: 1h, 24h, 7d.")] = "24h",
    host: Annotated[str | None, typer.Option(help="Host of the link (wildcard resources).")] = None,
    path: Annotated[str, typer.Option(help="Path the link opens.")] = "/",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Make a share link to a resource (`warren share grafana --expires 24h`), or end one
    (`warren share revoke ID`). The resource must say `auth: {share_links: true}`."""
    settings = _settings(config)
    if len(words) == 2 and words[0] == "revoke":
        _revoke_share(settings, words[1])
    elif len(words) == 1:
        _make_share(settings, words[0], expires, host, path)
    else:
        _fail("usage: warren share RESOURCE [--expires 24h] | warren share revoke LINK-ID", 2)


def _make_share(settings: "Settings", name: str, expires: str, host: str | None, path: str) -> None:
    from urllib.parse import quote, urlsplit

    from core.auth.keys import KeyRing
    from core.auth.tokens import issuer_for, mint, new_id
    from core.fields import parse_duration
    from core.policy.check import node_capabilities
    from core.policy.load import load_policy
    from core.problems import ConfigError

    try:
        lifetime = parse_duration(expires)
        policy = load_policy(settings.policy_file, node_capabilities(settings))
    except ValueError as error:
        _fail(str(error))
    except ConfigError as error:
        fail_with(error)
    resource = policy.resources.get(name)
    if resource is None or resource.model.protocol != "http":
        _fail(f"no http resource named {name} in {settings.policy_file}")
    if resource.auth is None or not resource.auth.share_links:
        _fail(f"{name} does not allow share links; add `share_links: true` under its auth")
    hosts = [h for h in resource.model.host or () if not h.startswith("*.")]
    chosen = host or (hosts[0] if hosts else None)
    if chosen is None or policy.resource_for(chosen) is not resource:
        _fail(f"pass --host with a name {name} serves")
    if not path.startswith("/"):
        _fail("--path starts with /")
    link_id = new_id()
    keys = KeyRing(settings.state_dir / "keys")
    keys.ensure()
    token = mint(
        keys,
        use="share",
        issuer=issuer_for(settings.public_url),
        audience=f"share:{name}",
        subject=f"share:{link_id}",
        lifetime=lifetime.total_seconds(),
        claims={"jti": link_id},
    )
    base = urlsplit(settings.public_url or f"http://x:{settings.listen.port}")
    port = f":{base.port}" if base.port else ""
    separator = "&" if "?" in path else "?"
    typer.echo(f"{base.scheme}://{chosen}{port}{path}{separator}warren_share={quote(token)}")
    typer.echo(
        f"link id {link_id}; expires in {expires}; end it with: warren share revoke {link_id}",
        err=True,
    )


def _revoke_share(settings: "Settings", link_id: str) -> None:
    import time

    from core.auth import sessions
    from core.auth.kv import open_kv

    async def revoke() -> None:
        kv = open_kv(settings.storage, settings.state_dir)
        try:
            # Links live at most a year; the revocation outlives any of them.
            await sessions.revoke_share(
                kv, link_id, time.time() + timedelta(days=366).total_seconds()
            )
        finally:
            await kv.close()

    asyncio.run(revoke())
    typer.echo(f"share link {link_id} revoked")


def keys_rotate(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Start signing with a new key. Older keys keep verifying until every token they signed has
    expired (session.ttl), then a later rotation deletes them. Copy state_dir/keys to every node
    that shares sessions."""
    from core.auth.keys import KeyRing

    settings = _settings(config)
    keys = KeyRing(settings.state_dir / "keys")
    keep = settings.session.ttl.total_seconds() + 300
    new, pruned = keys.rotate(keep_for=keep)
    typer.echo(f"signing with {new.kid}")
    for kid in pruned:
        typer.echo(f"deleted {kid} (retired longer than the longest session)")


def keys_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the keys; the last one signs."""
    from core.auth.keys import KeyRing

    settings = _settings(config)
    for kid in KeyRing(settings.state_dir / "keys").kids():
        typer.echo(kid)


def hash_secret(
    pin: Annotated[bool, typer.Option("--pin", help="A PIN: 4 to 12 digits.")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Hash a resource password or PIN for policy.yaml (password_hash / pin_hash)."""
    from core.auth.users import hash_secret as argon2id

    secret = _read_secret(password_stdin, "PIN" if pin else "Password")
    if pin and not (secret.isdigit() and 4 <= len(secret) <= 12):
        _fail("a PIN is 4 to 12 digits")
    if not pin and len(secret) < MIN_PASSWORD:
        _fail(f"a password needs at least {MIN_PASSWORD} characters")
    typer.echo(argon2id(secret))
