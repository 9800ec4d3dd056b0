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
from collections.abc import Awaitable, Callable
from typing import Any, cast

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


type FlowHook[A] = Callable[[A, http.HTTPFlow], None]
type AsyncFlowHook[A] = Callable[[A, http.HTTPFlow], Awaitable[None]]


def fail_closed[A](hook: Callable[[A, http.HTTPFlow], Any]) -> Any:
    name = f"{hook.__module__.rpartition('.')[2]}.{hook.__name__}"
    HOOKS.append(name)

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

    if inspect.iscoroutinefunction(hook):
        async_hook = cast(AsyncFlowHook[A], hook)

        @functools.wraps(hook)
        async def guarded_async(self: A, flow: http.HTTPFlow) -> None:
            try:
                if failed_before(flow):
                    return
                if FAILPOINTS and name in FAILPOINTS:
                    raise InjectedFault(name)
                await async_hook(self, flow)
            except Exception as error:
                fail(flow, error)

        return guarded_async

    sync_hook = cast(FlowHook[A], hook)

    @functools.wraps(hook)
    def guarded(self: A, flow: http.HTTPFlow) -> None:
        try:
            if FAILPOINTS and name in FAILPOINTS:
                raise InjectedFault(name)
            sync_hook(self, flow)
        except Exception as error:
            fail(flow, error)

    return guarded
