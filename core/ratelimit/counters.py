"""Where counters live: a `limits` storage for warren.yaml's `storage` URL (`core.storage`),
Warren's own in memory for `memory://`, Redis for every shared URL. The rate limiter and the
sign-in regulation both count in it.
"""

from typing import Any

from core.ratelimit.memory import MemoryStorage
from core.storage import is_shared, limits_url, stale_connection_retry

# Counters live under this prefix in a shared Redis, next to whatever else it holds.
KEY_PREFIX = "warren"

# A rate-limit check sits on every request. A Redis that is down refuses connections at once; one
# that hangs must not hold requests for redis-py's defaults (5 s, then retries with backoff):
# after these timeouts the outage is declared and requests stop waiting for storage at all.
CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 0.5


def open_storage(url: str) -> Any:
    """A `limits.aio.storage.Storage` for a checked URL. Nothing connects until first use."""
    if not is_shared(url):
        return MemoryStorage()
    # Imported here: a node on memory:// never loads redis-py.
    from limits.storage import storage_from_string

    options: dict[str, Any] = {
        "wrap_exceptions": True,
        "implementation": "redispy",
        "key_prefix": KEY_PREFIX,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": COMMAND_TIMEOUT_S,
        "retry": stale_connection_retry(),
    }
    return storage_from_string(limits_url(url), **options)
