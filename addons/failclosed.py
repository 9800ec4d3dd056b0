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

from mitmproxy import http

from addons.respond import refuse

log = logging.getLogger("warren.gateway")

FAILPOINTS: set[str] = set(filter(None, os.environ.get("WARREN_FAILPOINTS", "").split(",")))
HOOKS: list[str] = []  # every wrapped hook, as "module.hook"; the fault tests walk this list


class InjectedFault(RuntimeError):
    pass


# Set on a flow whose hook failed. A failure in `responseheaders` answers 500 before the server's
# body is in; mitmproxy then puts that body into the answer, so `response` answers 500 again.
FAILED = "warren_failed"
_ANSWERED_AGAIN = "warren_failed_answered"


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


def fail_closed(hook: Callable[[Any, http.HTTPFlow], Any]) -> Any:
    """For flow hooks: an exception answers 500 (and later hooks of the flow stand down)."""
    name = f"{hook.__module__.rpartition('.')[2]}.{hook.__name__}"

    def fail(flow: http.HTTPFlow, error: Exception) -> None:
        log.error("%s failed: %r; answering 500", name, error, exc_info=error)
        if flow.websocket is not None and flow.response is not None:
            flow.kill()  # the handshake is done; there is no response left to replace
            return
        refuse(flow, 500, reason=f"internal error in {name}")
        flow.metadata[FAILED] = name

    def failed_before(flow: http.HTTPFlow) -> bool:
        failed = flow.metadata.get(FAILED)
        if failed is None:
            return False
        if hook.__name__ != "response":
            return True
        if not flow.metadata.get(_ANSWERED_AGAIN) and flow.websocket is None:
            flow.metadata[_ANSWERED_AGAIN] = True
            refuse(flow, 500, reason=f"internal error in {failed}")
        return False  # response hooks still run: they count the request out

    return guard(hook, name, fail, HOOKS, skip=failed_before)
