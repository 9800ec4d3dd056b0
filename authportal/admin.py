"""What admins run: users, share links, keys, hashes. Heavy imports stay inside the commands so
`warren --help` stays fast."""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from core.commandline import DEFAULT_CONFIG, ConfigOption, fail_with

if TYPE_CHECKING:
    from core.auth.signinstate import KeyValue
    from core.auth.users import UsersFile
    from core.settings import Settings

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Name = Annotated[str, typer.Argument(help="The user's name (lower case, digits, . _ -).")]


def settings_of(config: Path) -> "Settings":
    from core.problems import ConfigError
    from core.settings import load_settings

    try:
        return load_settings(config)
    except ConfigError as error:
        fail_with(error)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _read_secret(from_stdin: bool, what: str = "Password") -> str:
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    return secret


def _new_password(from_stdin: bool) -> str:
    from core.auth.users import MIN_PASSWORD

    password = _read_secret(from_stdin)
    if len(password) < MIN_PASSWORD:
        fail(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def with_state[T](
    settings: "Settings",
    work: "Callable[[KeyValue], Awaitable[T]]",
    *,
    retry: str = "run this again",
) -> T:
    """Run `work` on the node's shared sign-in state (SQLite in state_dir, or Redis); `retry`
    says what to do when storage is down."""
    from core.auth.signinstate import open_kv
    from core.storagefailure import StorageUnavailable

    async def run() -> T:
        kv = open_kv(settings.storage, settings.state_dir)
        try:
            return await work(kv)
        finally:
            await kv.close()

    try:
        return asyncio.run(run())
    except StorageUnavailable as error:  # said plainly: what did not happen, and what to do
        fail(f"{error}: the sign-in state was not changed; when storage answers, {retry}")


@contextmanager
def refusals() -> Iterator[None]:
    """An operation of authportal.manage that was refused: its sentence, exit 1."""
    from authportal.manage import Refused

    try:
        yield
    except Refused as error:
        fail(str(error))


def change_users(settings: "Settings", change: "Callable[[UsersFile], UsersFile]") -> None:
    """users.yaml changed as the console changes it (authportal.manage.change_users)."""
    from authportal import manage

    with refusals():
        manage.change_users(settings, change)


def revoke_user(settings: "Settings", name: str) -> None:
    """End every sign-in `name` made until now, on every node sharing the storage."""
    from authportal import manage

    with_state(
        settings,
        lambda kv: manage.revoke_user(settings, kv, name),
        retry=f"end the sessions signed in before now: warren sessions revoke --user {name}",
    )


def user_add(
    name: Name,
    groups: Annotated[str, typer.Option(help="Comma-separated groups, e.g. ops,dev.")] = "",
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Add a user; the password is asked for (or read from stdin) and stored as argon2id."""
    from pydantic import ValidationError

    from authportal.manage import check_name
    from core.auth.users import User, UsersFile, hash_secret

    settings = settings_of(config)
    with refusals():
        check_name(name)
    password = _new_password(password_stdin)
    try:
        user = User(
            password=hash_secret(password),
            email=email,
            groups=tuple(g.strip() for g in groups.split(",") if g.strip()),
        )
        UsersFile(users={name: user})  # validates the name
    except ValidationError as error:
        fail(error.errors()[0]["msg"].removeprefix("Value error, "))

    def add(users: UsersFile) -> UsersFile:
        if name in users.users:
            fail(f"{name} already exists (use `warren user passwd` to change the password)")
        return users.model_copy(update={"users": {**users.users, name: user}})

    change_users(settings, add)
    typer.echo(f"added {name} to {settings.users_file}")


def user_passwd(
    name: Name, password_stdin: PasswordStdin = False, config: ConfigOption = DEFAULT_CONFIG
) -> None:
    """Change a user's password; their current sign-ins end."""
    from core.auth.users import UsersFile, hash_secret, load_users

    settings = settings_of(config)
    if name not in load_users(settings.users_file).users:
        fail(f"no user {name} in {settings.users_file}")
    hashed = hash_secret(_new_password(password_stdin))

    def change(users: UsersFile) -> UsersFile:
        user = users.users[name].model_copy(update={"password": hashed})
        return users.model_copy(update={"users": {**users.users, name: user}})

    change_users(settings, change)
    revoke_user(settings, name)
    typer.echo(f"changed the password of {name}; their sessions have ended")


def user_del(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Delete a user; their sign-ins end at once, on every resource."""
    from authportal import manage

    settings = settings_of(config)
    with refusals():
        manage.delete_user(settings, name)
    revoke_user(settings, name)
    typer.echo(f"deleted {name}; their sessions have ended")


def user_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List users, their groups, whether two-step verification is on, and disabled accounts."""
    from core.auth.users import load_users

    settings = settings_of(config)
    for name, user in sorted(load_users(settings.users_file).users.items()):
        groups = ",".join(user.groups) or "-"
        second = "2fa" if user.two_factor else "-"
        disabled = " disabled" if user.disabled else ""
        typer.echo(f"{name:20} {user.email or '-':30} {groups:20} {second}{disabled}")


def user_disable(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Disable a user: they cannot sign in, and their sign-ins end at once, everywhere."""
    from authportal import manage

    settings = settings_of(config)
    with refusals():
        with_state(
            settings,
            lambda kv: manage.disable_user(settings, kv, name),
            retry=f"end the sessions signed in before now: warren sessions revoke --user {name}",
        )
    typer.echo(f"disabled {name}; their sessions have ended")


def user_enable(name: Name, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Let a disabled user sign in again (their old sessions stay ended)."""
    from authportal import manage

    settings = settings_of(config)
    with refusals():
        manage.enable_user(settings, name)
    typer.echo(f"enabled {name}; they can sign in again")


Provider = Annotated[str, typer.Argument(help="An identity provider's name in warren.yaml (oidc).")]


def user_link(
    name: Name,
    provider: Provider,
    sub: Annotated[str, typer.Argument(help="The provider's subject (`sub`) for this person.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Let a provider's user sign in as NAME (by its subject, never by e-mail)."""
    from core.auth.oidc import link_identity

    settings = settings_of(config)
    if provider not in settings.oidc:
        fail(f"warren.yaml has no identity provider {provider!r} under oidc")
    if not sub or len(sub) > 255:
        fail("the subject is 1 to 255 characters")
    try:
        link_identity(partial(change_users, settings), name, provider, sub)
    except ValueError as error:
        fail(str(error))
    typer.echo(f"linked {name} to {provider} subject {sub}")


def user_unlink(name: Name, provider: Provider, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Stop a provider's user signing in as NAME."""
    from core.auth.oidc import unlink_identity

    settings = settings_of(config)
    try:
        found = unlink_identity(partial(change_users, settings), name, provider)
    except ValueError as error:
        fail(str(error))
    typer.echo(f"unlinked {name} from {provider}" if found else f"{name} had no {provider} link")


def user_passkeys(
    name: Name,
    remove: Annotated[
        str | None,
        typer.Option("--remove", help="Remove this passkey (its ID, or a unique beginning of it)."),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """List a user's passkeys (ID, name, date added), or --remove one."""
    from core.auth.passkeys import without_passkey
    from core.auth.users import Passkey, UsersFile, load_users

    settings = settings_of(config)
    user = load_users(settings.users_file).users.get(name)
    if user is None:
        fail(f"no user {name} in {settings.users_file}")
    if remove is not None:
        prefix = remove
        removed: list[Passkey] = []

        def change(users: UsersFile) -> UsersFile:
            changed, passkey = without_passkey(users, name, prefix)
            removed.append(passkey)
            return changed

        try:
            change_users(settings, change)
        except ValueError as error:
            fail(str(error))
        typer.echo(f"removed the passkey {removed[0].name} ({removed[0].id[:12]}) of {name}")
        return
    if not user.passkeys:
        typer.echo(f"{name} has no passkey", err=True)
        return
    rows = [("ID", "NAME", "CREATED")]
    rows += [(p.id[:12], p.name, p.created or "-") for p in user.passkeys]
    print_table(rows)


GroupList = Annotated[str, typer.Option(help="Comma-separated groups, e.g. ops,dev.")]


def user_groups(
    name: Name,
    groups: Annotated[
        str | None,
        typer.Argument(help="Comma-separated: the user's groups from now on ('' for none)."),
    ] = None,
    add: GroupList = "",
    remove: GroupList = "",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Set a user's groups (`alice ops,dev`), or --add / --remove some; without either, print
    them. Gateways decide on the new groups within a second; sessions stay signed in."""
    from authportal import manage
    from core.auth.users import load_users

    settings = settings_of(config)
    if groups is not None and (add or remove):
        fail("give the groups, or --add/--remove, not both", 2)
    if groups is None and not add and not remove:
        user = load_users(settings.users_file).users.get(name)
        if user is None:
            fail(f"no user {name} in {settings.users_file}")
        typer.echo(",".join(user.groups))
        return
    with refusals():
        changed = manage.regroup(settings, name, groups=groups, add=add, remove=remove)
    typer.echo(f"{name} is now in: {','.join(changed.groups) or '(no group)'}")


def user_2fa(
    name: Name,
    disable: Annotated[bool, typer.Option("--disable", help="Turn it off instead.")] = False,
    confirm: Annotated[
        bool, typer.Option(help="Ask for a code from the app before saving (recommended).")
    ] = True,
    fresh_recovery: Annotated[
        bool,
        typer.Option(
            "--recovery", help="Only make a fresh set of recovery codes (the old ones end)."
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Enrol a user in TOTP two-step verification: prints the otpauth URI, a QR code, and ten
    recovery codes (each works once in place of a code; shown only now)."""
    import pyotp

    from core.auth import recovery
    from core.auth.users import UsersFile, load_users

    settings = settings_of(config)
    existing = load_users(settings.users_file).users.get(name)
    if existing is None:
        fail(f"no user {name} in {settings.users_file}")
    if fresh_recovery and disable:
        fail("give --recovery or --disable, not both", 2)
    if fresh_recovery and existing.totp is None:
        fail(f"{name} has no two-step verification; run warren user 2fa {name} first")
    codes = [] if disable else recovery.new_codes()
    if fresh_recovery:
        _set_recovery(settings, name, recovery.digests(codes))
        _print_recovery(codes)
        typer.echo(f"new recovery codes for {name}; the old ones no longer work")
        return
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
                fail("that code does not match; nothing was changed. Run the command again.")

    kept = recovery.digests(codes)  # --disable: none; the codes stand in for the TOTP code

    def change(users: UsersFile) -> UsersFile:
        user = users.users[name].model_copy(update={"totp": secret, "recovery": kept})
        return users.model_copy(update={"users": {**users.users, name: user}})

    change_users(settings, change)
    if codes:
        _print_recovery(codes)
    typer.echo(f"two-step verification {'off' if disable else 'on'} for {name}")


def _set_recovery(settings: "Settings", name: str, kept: tuple[str, ...]) -> None:
    from core.auth.users import UsersFile

    def change(users: UsersFile) -> UsersFile:
        if name not in users.users:
            return users
        user = users.users[name].model_copy(update={"recovery": kept})
        return users.model_copy(update={"users": {**users.users, name: user}})

    change_users(settings, change)


def _print_recovery(codes: list[str]) -> None:
    typer.echo("Recovery codes (each works once in place of a code; Warren keeps only a hash,")
    typer.echo("so write them down or store them now, they are not shown again):\n")
    for code in codes:
        typer.echo(f"  {code}")
    typer.echo("")


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
        typer.Argument(
            help="RESOURCE to make a link, or: list, or: revoke LINK-ID", metavar="RESOURCE"
        ),
    ],
    expires: Annotated[str, typer.Option(help="How long the link works: 1h, 24h, 7d.")] = "24h",
    host: Annotated[str | None, typer.Option(help="Host of the link (wildcard resources).")] = None,
    path: Annotated[str, typer.Option(help="Path the link opens.")] = "/",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Make a share link to a resource (`warren share grafana --expires 24h`), list the links
    not yet expired or revoked (`warren share list`), or end one (`warren share revoke ID`).
    The resource must say `auth: {share_links: true}`."""
    settings = settings_of(config)
    if len(words) == 2 and words[0] == "revoke":
        _revoke_share(settings, words[1])
    elif words == ["list"]:
        _list_shares(settings)
    elif len(words) == 1:
        _make_share(settings, words[0], expires, host, path)
    else:
        fail(
            "usage: warren share RESOURCE [--expires 24h] | warren share list | "
            "warren share revoke LINK-ID",
            2,
        )


def _make_share(settings: "Settings", name: str, expires: str, host: str | None, path: str) -> None:
    import time
    from urllib.parse import quote, urlsplit

    from authportal import manage
    from core.auth.sessions import ShareRecord
    from core.auth.signing import KeyRing
    from core.auth.tokens import issuer_for, mint, new_id
    from core.fields import parse_duration
    from core.policy.check import node_capabilities
    from core.policy.load import load_policy
    from core.problems import ConfigError

    try:
        lifetime = parse_duration(expires)
        policy = load_policy(settings.policy_file, node_capabilities(settings))
    except ValueError as error:
        fail(str(error))
    except ConfigError as error:
        fail_with(error)
    resource = policy.resources.get(name)
    if resource is None or resource.model.protocol != "http":
        fail(f"no http resource named {name} in {settings.policy_file}")
    if resource.auth is None or not resource.auth.share_links:
        fail(f"{name} does not allow share links; add `share_links: true` under its auth")
    hosts = [h for h in resource.model.host or () if not h.startswith("*.")]
    chosen = host or (hosts[0] if hosts else None)
    if chosen is None or policy.resource_for(chosen) is not resource:
        fail(f"pass --host with a name {name} serves")
    if not path.startswith("/"):
        fail("--path starts with /")
    link_id = new_id()
    keys = KeyRing(settings.state_dir / "keys")
    keys.ensure()
    now = time.time()
    token = mint(
        keys,
        use="share",
        issuer=issuer_for(settings.public_url),
        audience=f"share:{name}",
        subject=f"share:{link_id}",
        lifetime=lifetime.total_seconds(),
        claims={"jti": link_id},
        now=now,
    )
    # Recorded before it is shown: a link nobody can list is one nobody remembers to revoke.
    record = ShareRecord(link_id, name, chosen, path, now, now + lifetime.total_seconds())
    with_state(settings, lambda kv: manage.record_share(kv, record), retry="make the link again")
    base = urlsplit(settings.public_url or f"http://x:{settings.listen.port}")
    port = f":{base.port}" if base.port else ""
    separator = "&" if "?" in path else "?"
    # stdout, one fact a line for scripts: the URL, `id ID`, `expires TIME` (UTC, ISO 8601).
    typer.echo(f"{base.scheme}://{chosen}{port}{path}{separator}warren_share={quote(token)}")
    typer.echo(f"id {link_id}")
    typer.echo(f"expires {utc_text(int(now) + int(lifetime.total_seconds()))}")
    typer.echo(
        f"link id {link_id}; expires in {expires}; end it with: warren share revoke {link_id}",
        err=True,
    )


def print_table(rows: "Sequence[Sequence[str]]") -> None:
    """A listing as the commands print it: a header row, then one row a line, columns padded
    and separated by two spaces (the last one unpadded)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (value.ljust(width) for value, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


def utc_text(moment: float) -> str:
    """A Unix time as admins read it and scripts parse it: ISO 8601, UTC, to the second."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _revoke_share(settings: "Settings", link_id: str) -> None:
    from authportal import manage

    with refusals():
        with_state(settings, lambda kv: manage.revoke_share(kv, link_id))
    typer.echo(f"share link {link_id} revoked")


def _list_shares(settings: "Settings") -> None:
    """One link a line under a header: ID, RESOURCE, HOST, PATH, CREATED, EXPIRES (UTC)."""
    from authportal import manage

    records = with_state(settings, manage.active_shares)
    rows = [("ID", "RESOURCE", "HOST", "PATH", "CREATED", "EXPIRES")]
    rows += [
        (r.link_id, r.resource, r.host, r.path, utc_text(r.created), utc_text(r.expires))
        for r in records
    ]
    print_table(rows)


def keys_rotate(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Start signing with a new key. Older keys keep verifying until every token they signed has
    expired (session.ttl), then a later rotation deletes them. With shared storage the new
    key's public half is published first, so every node trusts it from its first token."""
    from core.auth.signing import KeyRing, SigningKey
    from core.cluster.keys import announce_new_key
    from core.storage import is_shared

    settings = settings_of(config)
    keys = KeyRing(settings.state_dir / "keys")
    keep = settings.session.ttl.total_seconds() + 300
    problems: list[str] = []

    def announce(key: SigningKey) -> None:
        problem = announce_new_key(settings, keys, key)
        if problem is not None:
            problems.append(problem)

    new, pruned = keys.rotate(
        keep_for=keep, before_use=announce if is_shared(settings.storage) else None
    )
    for problem in problems:
        typer.secho(f"warning: {problem}", err=True, fg=typer.colors.YELLOW)
    typer.echo(f"signing with {new.kid}")
    for kid in pruned:
        typer.echo(f"deleted {kid} (retired longer than the longest session)")


def keys_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the keys; the last one signs."""
    from core.auth.signing import KeyRing

    settings = settings_of(config)
    for kid in KeyRing(settings.state_dir / "keys").kids():
        typer.echo(kid)


def hash_secret(
    pin: Annotated[bool, typer.Option("--pin", help="A PIN: 4 to 12 digits.")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Hash a resource password or PIN for policy.yaml (password_hash / pin_hash)."""
    from core.auth.users import MIN_PASSWORD
    from core.auth.users import hash_secret as argon2id

    secret = _read_secret(password_stdin, "PIN" if pin else "Password")
    if pin and not (secret.isdigit() and 4 <= len(secret) <= 12):
        fail("a PIN is 4 to 12 digits")
    if not pin and len(secret) < MIN_PASSWORD:
        fail(f"a password needs at least {MIN_PASSWORD} characters")
    typer.echo(argon2id(secret))
