"""What "the shared storage is down" looks like to Warren's code, and what a person is told.

Redis (or Valkey, or the Sentinel in front of them) can be unreachable, refusing connections,
timing out, loading its data after a restart, or between masters during a failover. redis-py
raises its ConnectionError or TimeoutError for all of these (BusyLoadingError and Sentinel's
MasterNotFoundError are ConnectionErrors); `limits` wraps them in its StorageError. Sign-in state
(`core.auth.signinstate`) raises `StorageUnavailable` instead, so callers need to know one name.

The gateway (`addons.failclosed`) and the portal (`authportal.errors`) answer any of them with
Warren's own 503 page, never a 500 or a traceback: the request needed storage to be answered
(a new sign-in, a sign-out, a one-time code), and will work again when storage does.
"""

from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Retry-After (RFC 9110 §10.2.3) on the 503: a failover or a restart takes seconds.
RETRY_AFTER_SECONDS = 5

DETAIL = (
    "Warren cannot reach the storage it keeps sign-ins in, so it cannot complete this step now. "
    "Applications you are already signed in to keep working. Try again in a few seconds."
)


class StorageUnavailable(Exception):
    """The shared storage did not answer; the message says which storage and why."""


# What a redis-py call raises when the server cannot answer; around such a call, a socket's own
# OSError means the same (Sign-in state wraps them all in StorageUnavailable).
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
# What the gateway and the portal answer with the 503 page. Not any OSError: raised elsewhere
# (an unreadable users.yaml) it is not the storage's, and stays a 500.
FAILURES: tuple[type[BaseException], ...] = (
    StorageUnavailable,
    StorageError,
    RedisConnectionError,
    RedisTimeoutError,
)


def is_storage_failure(error: BaseException) -> bool:
    return isinstance(error, FAILURES)


def reason(error: BaseException) -> str:
    """One line for a log: the innermost cause's type and message, without a traceback."""
    inner = getattr(error, "storage_error", None) or error.__cause__ or error
    return f"{type(inner).__name__}: {inner}"[:300]
