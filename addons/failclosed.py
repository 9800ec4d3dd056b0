"""Fail closed: a Warren hook that raises answers 500 instead of letting the request through.

mitmproxy logs exceptions from addon hooks and carries on with the flow, which for a gateway
means forwarding a request nobody checked. Every Warren hook is wrapped by `fail_closed`.

Failpoints: `WARREN_FAILPOINTS=rules.requestheaders,...` makes the named hooks raise, so tests
can prove the above against a real gateway process. Unset in production; it costs one truth
test of an empty set per hook call.
"""

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks

from addons.respond import refuse
from core import storagefailure
from core.storagefailure import is_storage_failure

log = logging.getLogger("warren.gateway")
# On the log records of a request's or a connection's failure: the gateway's start-up check
# (addons.gateway) exits on errors logged while it starts, and a client that connects in that
# window with a failing hook is not a start that failed.
TRAFFIC = {"traffic": True}


def is_traffic(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "traffic", False))


FAILPOINTS: set[str] = set(filter(None, os.environ.get("WARREN_FAILPOINTS", "").split(",")))
HOOKS: list[str] = []  # every wrapped hook, as "module.hook"; the fault tests walk this list
CONNECTION_HOOKS: list[str] = []  # the same for connection hooks (fail_closed_connection)


class InjectedFault(RuntimeError):
    pass


# Set on a flow whose hook failed. A failure in `responseheaders` answers 500 before the server's
# body is in; mitmproxy then puts that body into the answer, so `response` answers 500 again.
FAILED = "warren_failed"
_ANSWERED_AGAIN = "warren_failed_answered"
_STORAGE_DOWN = "warren_failed_storage"  # the failure was the storage's: answered 503


def guard[S](
    hook: Callable[[Any, S], Any],
    name: str,
    on_error: Callable[[S, Exception], None],
    registry: list[str],
    skip: Callable[[S], bool] | None = None,
) -> Any:
    """Wrap a hook (sync or async) so an exception, injected or real, goes to `on_error`."""
    registry.append(name)

    if inspect.iscoroutinefunction(hook):

        @functools.wraps(hook)
        async def guarded_async(self: Any, subject: S) -> None:
            try:
                if skip is not None and skip(subject):
                    return
                if FAILPOINTS and name in FAILPOINTS:
                    raise InjectedFault(name)
                await hook(self, subject)
            except Exception as error:
                on_error(subject, error)

        return guarded_async

    @functools.wraps(hook)
    def guarded(self: Any, subject: S) -> None:
        try:
            if skip is not None and skip(subject):
                return
            if FAILPOINTS and name in FAILPOINTS:
                raise InjectedFault(name)
            hook(self, subject)
        except Exception as error:
            on_error(subject, error)

    return guarded


def answer_failure(flow: http.HTTPFlow, name: str, error: Exception) -> None:
    """What a failed step answers: 500, or Warren's 503 page when the storage is down."""
    if flow.websocket is not None and flow.response is not None:
        log.error(
            "%s failed: %r; closing the connection", name, error, exc_info=error, extra=TRAFFIC
        )
        flow.kill()  # the handshake is done; there is no response left to replace
        return
    if is_storage_failure(error):
        # Not a bug: the request needs the shared storage, which is down. Warren's 503 page and
        # one line per request (the sign-in state logs the outage itself), no traceback.
        flow.metadata[_STORAGE_DOWN] = True
        _storage_down(flow, f"{name}: storage unavailable ({storagefailure.reason(error)})")
    else:
        log.error("%s failed: %r; answering 500", name, error, exc_info=error, extra=TRAFFIC)
        refuse(flow, 500, reason=f"internal error in {name}")
    flow.metadata[FAILED] = name


def _storage_down(flow: http.HTTPFlow, reason: str) -> None:
    refuse(
        flow,
        503,
        detail=storagefailure.DETAIL,
        reason=reason,
        headers={"retry-after": str(storagefailure.RETRY_AFTER_SECONDS)},
    )


def fail_closed(hook: Callable[[Any, http.HTTPFlow], Any]) -> Any:
    """For flow hooks: an exception answers 500 (and later hooks of the flow stand down)."""
    name = f"{hook.__module__.rpartition('.')[2]}.{hook.__name__}"

    def fail(flow: http.HTTPFlow, error: Exception) -> None:
        answer_failure(flow, name, error)

    def failed_before(flow: http.HTTPFlow) -> bool:
        failed = flow.metadata.get(FAILED)
        if failed is None:
            return False
        if hook.__name__ != "response":
            return True
        if not flow.metadata.get(_ANSWERED_AGAIN) and flow.websocket is None:
            flow.metadata[_ANSWERED_AGAIN] = True
            if flow.metadata.get(_STORAGE_DOWN):
                _storage_down(flow, f"{failed}: storage unavailable")
            else:
                refuse(flow, 500, reason=f"internal error in {failed}")
        return False  # response hooks still run: they count the request out

    return guard(hook, name, fail, HOOKS, skip=failed_before)


def fail_closed_connection(kill: Callable[[Any, str], None]) -> Callable[[Any], Any]:
    """For connection hooks: an exception, injected or real, closes the connection (`kill`)."""

    def wrap(hook: Callable[[Any, Any], Any]) -> Any:
        name = f"{hook.__module__.rpartition('.')[2]}.{hook.__name__}"

        def fail(data: Any, error: Exception) -> None:
            log.error(
                "%s failed: %r; closing the connection", name, error, exc_info=error, extra=TRAFFIC
            )
            kill(data, f"internal error in {name}")

        return guard(hook, name, fail, CONNECTION_HOOKS)

    return wrap


def kill_client(client: connection.Client, reason: str) -> None:
    client.error = reason


def kill_server(data: server_hooks.ServerConnectionHookData, reason: str) -> None:
    data.server.error = reason
