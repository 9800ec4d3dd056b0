"""The portal's metrics (core.metrics.portal) on its aiohttp application: the counters the views
move, and the metrics listener (core.metrics.server), started and stopped with the application.

/readyz is ready while the sign-in state answers: without it the portal can show pages but sign
nobody in.
"""

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from authportal.state import PORTAL
from core.auth.regulation import Lockout
from core.logs import event
from core.metrics.portal import LOCKED_OUT, PortalMetrics
from core.metrics.server import MetricsServer, Ready

log = logging.getLogger("warren.portal")

METRICS = web.AppKey("warren_metrics", PortalMetrics)

_READY_PROBE = "warren:readyz"  # a key read, never written: a read proves the storage answers


def install(app: web.Application) -> None:
    """The metrics for the views to count in, and the listener for the application's life."""
    portal = app[PORTAL]
    app[METRICS] = PortalMetrics(portal.policy, portal.services.kv)
    app.cleanup_ctx.append(_listening)


def sign_in_outcome(request: web.Request, outcome: str, **fields: object) -> None:
    """A sign-in attempt's outcome, said once: the `sign-in` event and its counter."""
    event(log, "sign-in", outcome=outcome, level=_level(outcome), **fields)
    request.app[METRICS].signed_in(outcome)


def resource_password_outcome(request: web.Request, outcome: str, **fields: object) -> None:
    """A resource password's or PIN's outcome: the `resource-password` event and its counter."""
    event(log, "resource-password", outcome=outcome, level=_level(outcome), **fields)
    request.app[METRICS].resource_password(outcome)


def lockout_fields(lockout: Lockout) -> dict[str, object]:
    return {"locked_by": lockout.reason, "retry_after_s": round(lockout.retry_after)}


def _level(outcome: str) -> int:
    return logging.WARNING if outcome == LOCKED_OUT else logging.INFO


async def _listening(app: web.Application) -> AsyncIterator[None]:
    portal = app[PORTAL]
    metrics = app[METRICS]
    listen = portal.settings.metrics.portal
    server = None
    if listen is not None:

        async def ready() -> Ready:
            try:
                await portal.services.kv.get_many([_READY_PROBE])
            except Exception:  # StorageUnavailable, or anything else the storage raised
                return Ready(False, "sign-in state unavailable")
            return Ready(True)

        server = MetricsServer(listen, metrics.registry, ready, refresh=metrics.refresh)
        if not await server.start():
            server = None
    yield
    if server is not None:
        await server.close()
