"""Warren's `storage` URLs: what a node shares with other processes and nodes.

Rate-limit counters and failed sign-ins go through the `limits` library
(`core.ratelimit.counters.open_storage`, which reads `limits_url`); sessions, one-time codes and
revocations through a redis-py client (`redis_client`). Both read the same URL, so every
documented scheme means the same server for both.

| warren.yaml                              | limits                           |
|------------------------------------------|----------------------------------|
| memory://                                | warren+memory:// (Warren's own)  |
| redis://[:pw@]host:6379/0, rediss://...  | async+redis://, async+rediss://  |
| redis+unix:///run/redis.sock?db=0        | async+redis+unix://              |
| redis+sentinel://host:26379,h2:26379/svc | async+redis+sentinel://          |
| valkey://, valkeys://, valkey+unix://,   | the same as the redis schemes:   |
| valkey+sentinel://                       | Valkey speaks the Redis protocol |

Every Redis-family URL uses redis-py's asyncio client (`implementation="redispy"`), so there is
one client library to trust and to tune, whichever server answers.
"""

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry

_SCHEMES = {
    "memory": "warren+memory",  # core.ratelimit.memory
    "redis": "async+redis",
    "rediss": "async+rediss",
    "redis+unix": "async+redis+unix",
    "redis+sentinel": "async+redis+sentinel",
    "valkey": "async+redis",
    "valkeys": "async+rediss",
    "valkey+unix": "async+redis+unix",
    "valkey+sentinel": "async+redis+sentinel",
}


def check_storage_url(value: str) -> str:
    """Validate `storage` in warren.yaml (used by core.settings)."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"{redact(text)!r} is not a storage Warren supports: memory://, "
            "redis://HOST:PORT/DB, rediss://, redis+unix://PATH, "
            "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE, or the same with valkey"
        )
    if parts.scheme.endswith("+sentinel") and not parts.path.strip("/"):
        raise ValueError(f"{redact(text)!r} needs the sentinel service name as its path")
    if parts.scheme in ("memory", "redis+unix", "valkey+unix"):
        return text
    try:
        _with_ports(parts.netloc, parts.scheme)
    except ValueError:
        raise ValueError(
            f"{redact(text)!r} needs HOST or HOST:PORT, e.g. {parts.scheme}://127.0.0.1:6379"
        ) from None
    return text


def _with_ports(netloc: str, scheme: str) -> str:
    """`limits` wants a port on every location; fill in the default the admin left out."""
    credentials, at, hosts = netloc.rpartition("@")
    default = 26379 if scheme.endswith("+sentinel") else 6379
    located = []
    for location in hosts.split(","):
        probe = urlsplit(f"//{location.strip()}")
        if not probe.hostname or (probe.port is None and location.strip().endswith(":")):
            raise ValueError(location)
        port = probe.port or default
        host = f"[{probe.hostname}]" if ":" in probe.hostname else probe.hostname
        located.append(f"{host}:{port}")
    return credentials + at + ",".join(located)


def is_shared(url: str) -> bool:
    return urlsplit(url).scheme != "memory"


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def limits_url(url: str) -> str:
    parts = urlsplit(url)
    if is_shared(url) and not parts.scheme.endswith("+unix"):
        parts = parts._replace(netloc=_with_ports(parts.netloc, parts.scheme))
    return urlunsplit(parts._replace(scheme=_SCHEMES[parts.scheme]))


def stale_connection_retry() -> "Retry":
    """One immediate retry of a command that met a dead connection.

    A pooled connection left over from before a Redis restart fails its next command once, then
    reconnects. redis-py's `Redis.from_url` retries nothing (its pool's connections get no
    retry), while `Redis(...)` retries ten times with back-off; one policy for every client,
    and anything more than one only delays declaring an outage.
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 1)


def redis_client(url: str, **options: Any) -> "Redis":
    """A redis-py asyncio client for a shared `storage` URL (not `memory://`)."""
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel

    options.setdefault("retry", stale_connection_retry())

    parts = urlsplit(url)
    kind = parts.scheme.partition("+")[2]
    tls = parts.scheme in ("rediss", "valkeys")
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if kind == "unix":
        database = int(parse_qs(parts.query).get("db", ["0"])[0])
        return Redis(
            unix_socket_path=parts.path,
            db=database,
            username=username,
            password=password,
            **options,
        )
    located = _with_ports(parts.netloc, parts.scheme).rpartition("@")[2].split(",")
    if kind == "sentinel":
        hosts = [
            (urlsplit(f"//{h}").hostname or "", urlsplit(f"//{h}").port or 26379) for h in located
        ]
        service = parts.path.strip("/").partition("/")[0]
        # The sentinels are asked where the primary is with the caller's socket timeouts, or 2 s:
        # redis-py would otherwise wait on an unanswering sentinel for as long as TCP does.
        asked = {k: v for k, v in options.items() if k.startswith("socket_")}
        asked = asked or {"socket_connect_timeout": 2, "socket_timeout": 2}
        sentinel = Sentinel(hosts, sentinel_kwargs=asked, username=username, password=password)
        master: Redis = sentinel.master_for(
            service, username=username, password=password, **options
        )
        return master
    scheme = "rediss" if tls else "redis"
    netloc = _with_ports(parts.netloc, parts.scheme)  # the same defaults `limits` gets
    return Redis.from_url(urlunsplit(parts._replace(scheme=scheme, netloc=netloc)), **options)
