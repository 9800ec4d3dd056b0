"""Keeping sites to the node: an nftables table of the sidecar's own that forwards nothing from
or to the WireGuard interface.

WireGuard already stops a site from sending as anyone but its own tunnel address, and a site's
agent routes only the node's address. What is left when a node forwards IP (Docker hosts do): a
site that is taken over routes other addresses into its tunnel, and the node forwards them to
its other networks (its LAN, Docker's bridges), whose answers find their way back. The other way,
a container on the node is masqueraded to the node's own tunnel address on its way out of the
interface, and reaches the sites' forwards without passing the gateway. Neither is anything
Warren needs: the gateway and the sidecar are the node itself, so their packets to and from the
sites are the node's own (output and input), never forwarded.

One table, replaced whole in one nft transaction: starting again after a crash finds the old one
and makes it anew; stopping removes it. Another sidecar's table on the same host is the same
table, so run one sidecar per network namespace.
"""

import logging
import shutil
import subprocess

log = logging.getLogger("warren.sidecar")

TABLE = "inet warren"


class IsolationError(RuntimeError):
    pass


def ruleset(interface: str) -> str:
    # `table` then `delete table` makes the delete succeed whether or not the table exists; the
    # whole script is one transaction, so the node is never without the rules in between.
    # Priority before the usual `filter` chains (Debian's inet filter, Docker's ip filter): a
    # drop anywhere on the hook is final, and ours is counted first.
    return f"""\
table {TABLE}
delete table {TABLE}
table {TABLE} {{
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname "{interface}" counter drop comment "a site reaches the node, nothing behind it"
        oifname "{interface}" counter drop comment "only the node itself talks to sites"
    }}
}}
"""


def install(interface: str) -> None:
    _nft(ruleset(interface))
    log.info("isolation: nothing is forwarded from or to %s (nft table %s)", interface, TABLE)


def remove() -> None:
    _nft(f"table {TABLE}\ndelete table {TABLE}\n")


def present(interface: str) -> bool:
    """Whether the table is there with both rules: `systemctl restart nftables` on Debian
    flushes every table, ours included, so the sidecar looks again now and then."""
    binary = shutil.which("nft")
    if binary is None:
        return False
    try:
        done = subprocess.run(
            [binary, "list", "table", *TABLE.split()], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    lines = [line.split() for line in done.stdout.splitlines()]
    return done.returncode == 0 and all(
        any(words[:2] == [side, f'"{interface}"'] and "drop" in words for words in lines)
        for side in ("iifname", "oifname")
    )


def apply(wanted: bool, interface: str) -> None:
    """At start: the table in place, or (isolation off) none left from an earlier run."""
    if wanted:
        install(interface)
    elif shutil.which("nft") is not None:
        remove()
        log.warning("isolation off (wireguard.isolate: false): the node's own rules decide")


def _nft(script: str) -> None:
    binary = shutil.which("nft")
    if binary is None:
        raise IsolationError(
            "wireguard.isolate needs nft (the nftables package); install it, or set "
            "wireguard.isolate: false and keep sites off the node's networks yourself "
            "(docs/tunnels.md, Isolation)"
        )
    try:
        done = subprocess.run(
            [binary, "-f", "-"], input=script, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise IsolationError(f"nft failed: {error}") from None
    if done.returncode != 0:
        raise IsolationError(f"nft refused the isolation table: {done.stderr.strip()}")
