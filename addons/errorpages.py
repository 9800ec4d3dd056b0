"""mitmproxy's own error answers (upstream unreachable, unparseable request) as Warren pages.

mitmproxy writes these pages inside its HTTP layers, past every hook, with the raw error text,
which names internal addresses. The layers share one formatting function; Warren replaces it
with its own page and a generic text, and logs the detail instead. tests/addons/test_errorpages.py
fails if a mitmproxy upgrade moves that function.
"""

import logging

from mitmproxy import http
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from addons.exchange import exchange_of
from core import pages

log = logging.getLogger("warren.gateway")


def warren_error_page(status_code: int, message: str) -> bytes:
    return pages.render(status_code, accept="text/html").body


class ErrorPages:
    def load(self, loader: object) -> None:
        for module in (_http1, _http2, _http3):
            module.format_error = warren_error_page  # type: ignore[attr-defined]

    def error(self, flow: http.HTTPFlow) -> None:
        exchange = exchange_of(flow)
        target = exchange.target if exchange is not None else None
        where = f"{target.host}:{target.port}" if target else flow.request.host
        log.warning(
            "%s %s%s: upstream %s failed: %s",
            flow.request.method,
            flow.request.host_header or "-",
            flow.request.path[:200],
            where,
            flow.error.msg if flow.error else "unknown error",
        )
