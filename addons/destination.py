"""Where a decided request goes: a target's address, or another node's (addons.relay)."""

from mitmproxy import http


def point_at(request: http.Request, scheme: str, address: tuple[str, int]) -> None:
    """Send `request` to `address`, with the client's Host: setting the destination would
    rewrite Host/:authority, and the backend must see the client's. An absolute-form target
    (`GET http://other/x`) goes on in origin-form, with the Host it was decided by; otherwise
    it would name the internal address (RFC 9112 §3.2.1)."""
    host_header = request.host_header
    if not (request.is_http2 or request.is_http3):
        request.authority = ""
    request.scheme = scheme
    request.host, request.port = address
    request.host_header = host_header
