"""Waiting for a condition instead of sleeping a fixed time."""

import time
from collections.abc import Callable

import httpx


def eventually[T](check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """`check` returns a truthy value or raises; retried until then, or until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
