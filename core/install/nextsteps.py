"""What `warren init` prints once it has written the files: the DNS records, the firewall's
ports, the services' account, the line that starts the node, and what to run on the home server."""

from pathlib import Path

from core.install.answers import Answers
from core.install.render import NODE_UNITS, SITE_SECRETS, SITE_UNIT, Paths

SYSTEM_UNITS = Path("/etc/systemd/system")
# ProtectHome= and PrivateTmp= in the units: the services see none of these.
_HIDDEN = tuple(Path(p) for p in ("/home", "/root", "/run/user", "/tmp", "/var/tmp"))  # noqa: S108


def hidden_paths(paths: Paths) -> list[str]:
    return [
        f"{what} {path} is where the services cannot see it (ProtectHome=, PrivateTmp=)"
        for what, path in (("the configuration", paths.config_dir), ("warren", paths.warren))
        if any(path.is_relative_to(hidden) for hidden in _HIDDEN)
    ]


def dns_records(answers: Answers) -> list[str]:
    names = [(f"*.{answers.domain}", "every application"), (answers.portal_host, "the portal")]
    if not _is_address(answers.wg_host):
        names.append((answers.wg_host, "DNS only, never proxied: WireGuard is UDP"))
    addresses = [("A", answers.ipv4 or "<this node's IPv4 address>")]
    if answers.ipv6:
        addresses.append(("AAAA", answers.ipv6))
    width = max(len(name) for name, _ in names) + 1
    lines = [
        f"  {name + '.':{width}}  {kind:4}  {address:24}  # {why}"
        for name, why in names
        for kind, address in addresses
    ]
    if not answers.ipv6:
        lines.append("  (and the same as AAAA records if the node has an IPv6 address: --ipv6)")
    return lines


def _is_address(host: str) -> bool:
    return ":" in host or host.replace(".", "").isdigit()


def firewall() -> list[str]:
    return [
        "  443/tcp (HTTPS), 80/tcp (ACME's HTTP-01, and the redirect to HTTPS), 51820/udp "
        "(WireGuard), e.g.",
        "  ufw allow 443/tcp && ufw allow 80/tcp && ufw allow 51820/udp",
    ]


def account_lines(paths: Paths, exists: bool) -> list[str]:
    config = paths.config_dir
    lines = [] if exists else [_useradd(paths.user, "/var/lib/warren")]
    return [
        *lines,
        f"  chgrp {paths.user} {config} {config / 'warren.yaml'} {config / 'policy.yaml'}",
        f"  chown {paths.user}:{paths.user} {config / 'users.yaml'}",
    ]


def _useradd(user: str, home: str) -> str:
    return (
        f"  useradd --system --user-group --home-dir {home} --no-create-home "
        f"--shell /usr/sbin/nologin {user}"
    )


def start_lines(paths: Paths) -> list[str]:
    units = " ".join(name.removesuffix(".service") for name in NODE_UNITS)
    lines = []
    if paths.units_dir != SYSTEM_UNITS:
        lines.append(f"  (the units are in {paths.units_dir}: copy them to {SYSTEM_UNITS})")
    return [
        *lines,
        "  systemctl daemon-reload",
        f"  systemctl enable --now {units}",
        "  systemctl status warren-gateway    # active (running) once it listens",
    ]


def site_lines(answers: Answers, paths: Paths) -> list[str]:
    secret = SITE_SECRETS / f"{answers.site}.secret"
    bundle = paths.site_dir.name
    return [
        f"  {_useradd(paths.user, '/var/lib/warren-site').strip()}",
        f"  install -D -m 0600 {bundle}/{answers.site}.secret {secret}",
        f"  install -m 0644 {bundle}/{SITE_UNIT} {SYSTEM_UNITS}/",
        "  systemctl daemon-reload && systemctl enable --now warren-site",
        "or, to watch it in the foreground first:",
        f"  warren site --node {answers.node_url} --site {answers.site} --secret-file {secret}",
    ]


def report(answers: Answers, paths: Paths, password: str | None, account: tuple[bool, bool]) -> str:
    """`password` is shown when init made it up; `account`: whether the services' account
    exists, and whether the files were already handed to it."""
    exists, handed_over = account
    sections = [
        ("DNS records to create:", dns_records(answers)),
        ("Open in the firewall:", firewall()),
    ]
    if not handed_over:
        title = f"The services run as {paths.user}: make the account, let it read its files:"
        sections.append((title, account_lines(paths, exists)))
    sections += [
        ("Start the node (as root):", start_lines(paths)),
        (
            f"On the home server, with Warren installed as here (and wireguard-go where the "
            f"kernel has no WireGuard), copy {paths.site_dir}/ over (scp -r) and run as root:",
            site_lines(answers, paths),
        ),
    ]
    lines = _password(answers, paths, password)
    for number, (title, body) in enumerate(sections, 1):
        lines += ["", f"{number}. {title}", *body]
    return "\n".join([*lines, *_afterwards(answers, paths)])


def _password(answers: Answers, paths: Paths, password: str | None) -> list[str]:
    if password is None:
        return []
    return [
        f"{answers.admin}'s password, shown this once: {password}",
        f"  (to change it: warren user passwd {answers.admin} -c {paths.config})",
    ]


def _afterwards(answers: Answers, paths: Paths) -> list[str]:
    return [
        "",
        f"Then `warren status -c {paths.config}` here shows {answers.site} online, and "
        f"https://app.{answers.domain} asks you to sign in. The applications listen on the home "
        "server's 127.0.0.1:3000 (app) and 127.0.0.1:8080 (www): see policy.yaml.",
        f"Another private server: warren site add NAME -c {paths.config} "
        f"-o {paths.site_dir}/NAME.secret",
    ]
