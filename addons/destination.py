"""Where a decided request goes: a target's address, or another node's (addons.relay)."""

from mitmproxy import http


def point_at(request: http.Request, scheme: str, address: tuple[str, int]) -> None:
    """Send `request` to `address`, with the client's Host: the backend must see the client's.
    An absolute-form target (`GET http://other/x`) goes on in origin-form, with the Host it was
    decided by; otherwise it would name the internal address (RFC 9112 §3.2.1)."""
    if request.is_http2 or request.is_http3:
        # mitmproxy's setters rewrite :authority (and Host) to the address; put the client's back.
        host_header = request.host_header
        request.scheme = scheme
        request.host, request.port = address
        request.host_header = host_header
        return
    # HTTP/1: the destination alone. mitmproxy's `host` and `port` setters would rewrite Host to
    # the address (to be put back at once), each a pass over every header field of the request.
    request.authority = ""
    request.scheme = scheme
    request.data.host, request.data.port = address
