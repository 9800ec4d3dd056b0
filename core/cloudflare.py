"""Cloudflare's edge addresses: whose CF-Connecting-IP a policy with `trusted_proxies:
[cloudflare]` believes, and who alone may ask when it also sets `require_trusted_proxy`.

Cloudflare publishes them at https://www.cloudflare.com/ips-v4 and /ips-v6, one CIDR a line.
The copy below is what this release knew; `warren cloudflare-ranges update` fetches the current
lists into a file in state_dir, which the gateway reads instead from its next reload on.
"""

from collections.abc import Sequence
from ipaddress import IPv4Network, ip_network
from pathlib import Path

from core.ipsets import IPNetwork
from core.problems import ConfigError, Problem

PUBLISHED_V4 = "https://www.cloudflare.com/ips-v4"
PUBLISHED_V6 = "https://www.cloudflare.com/ips-v6"
RANGES_FILE = "cloudflare-ranges.txt"  # in state_dir

KNOWN: tuple[IPNetwork, ...] = tuple(
    ip_network(cidr)
    for cidr in (
        "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22",
        "141.101.64.0/18", "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20",
        "197.234.240.0/22", "198.41.128.0/17", "162.158.0.0/15", "104.16.0.0/13",
        "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
        "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32",
        "2405:8100::/32", "2a06:98c0::/29", "2c0f:f248::/32",
    )
)  # fmt: skip

# Trusting a network lets everyone in it name any client address. A list holding a network
# wider than these is not Cloudflare's (a hijacked download, a typo), and is refused.
_WIDEST = {4: 8, 6: 20}


def parse_ranges(text: str, source: str) -> tuple[IPNetwork, ...]:
    """The networks of a published list (one CIDR a line, `#` comments); ValueError, saying
    which line and why, for anything else — and for a list without both IPv4 and IPv6."""
    networks: list[IPNetwork] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        try:
            network = ip_network(entry)
        except ValueError:
            raise ValueError(f"{source}:{number}: {entry[:60]!r} is not a CIDR") from None
        if network.prefixlen < _WIDEST[network.version]:
            raise ValueError(f"{source}:{number}: {network} is wider than any Cloudflare range")
        networks.append(network)
    if {n.version for n in networks} != {4, 6}:
        raise ValueError(f"{source}: a list of Cloudflare's ranges holds IPv4 and IPv6 networks")
    return tuple(networks)


def node_ranges(state_dir: Path) -> tuple[IPNetwork, ...]:
    """The fetched lists when there are any, else the ones this release knew."""
    path = state_dir / RANGES_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return KNOWN
    except OSError as error:
        raise ConfigError([Problem((), f"cannot be read: {error.strerror}", path)]) from None
    try:
        return parse_ranges(text, str(path))
    except ValueError as error:
        raise ConfigError([Problem((), str(error), None)]) from None


def ranges_text(networks: Sequence[IPNetwork], sources: Sequence[str]) -> str:
    lines = [f"# Cloudflare's edge networks, from {', '.join(sources)}"]
    v4 = [n for n in networks if isinstance(n, IPv4Network)]
    v6 = [n for n in networks if not isinstance(n, IPv4Network)]
    return "\n".join([*lines, *map(str, v4), *map(str, v6)]) + "\n"


def fetch_ranges(urls: Sequence[str], timeout: float = 20) -> tuple[IPNetwork, ...]:
    """Both published lists, checked as `parse_ranges` does; httpx.HTTPError or ValueError."""
    import httpx

    texts = []
    for url in urls:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
        texts.append(response.text)
    return parse_ranges("\n".join(texts), " + ".join(urls))
