"""Once more, elsewhere: a request whose connection to its target failed goes to another target.

Only when nothing of it can have arrived anywhere: the connection was never opened (refused,
unreachable, `timeouts.connect` passed), so no byte of the request was sent and none of a
response came back; and only a method the resource lets be sent twice (`retry.methods`: GET,
HEAD and OPTIONS by default, the safe methods of RFC 9110 §9.2.1; PUT and DELETE, idempotent by
§9.2.2, where the resource says so). At most once per request (addons.layers), on another
target of the same route (or the resource's targets) that is in routing. The failed target is
ejected for its back-off either way (core.balance), retried or not.
"""

import logging

from mitmproxy import http

from addons.destination import point_at
from addons.exchange import Exchange
from core.balance import target_key

log = logging.getLogger("warren.gateway")

RETRIED = "warren.retried"  # flow.metadata: the target it went to first, when it was retried


def connect_failed(flow: http.HTTPFlow, exchange: Exchange) -> None:
    target = exchange.target
    if target is None or not exchange.routed:
        return
    runtime, key, request = exchange.runtime, target_key(target), flow.request
    if runtime.sites.resolve(target) != (request.host, request.port):
        return  # it went to another node (addons.relay): the node failed, not the target
    runtime.upstreams.connect_failed(key)
    if RETRIED in flow.metadata or flow.response is not None:
        return  # the retry failed too: that target is ejected as well, and that is all
    if request.method not in exchange.resource.model.retry.methods:
        return
    other = runtime.upstreams.pick(
        exchange.resource, exchange.client.ip, exchange.route, without=key
    )
    address = None if other is None else runtime.sites.resolve(other)
    if other is None or address is None:
        return
    point_at(request, other.scheme, address)
    runtime.upstreams.finished(key)
    runtime.upstreams.started(target_key(other))
    exchange.target = other
    flow.metadata[RETRIED] = target
    log.info(
        "%s %s: %s:%d failed to connect, trying %s:%d",
        request.method,
        exchange.resource.name,
        target.host,
        target.port,
        other.host,
        other.port,
    )
