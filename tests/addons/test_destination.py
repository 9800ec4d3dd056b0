"""addons.destination: a decided request goes to its address with the client's Host, in
origin-form (RFC 9112 §3.2.1), on mitmproxy's test requests."""

from mitmproxy.test import tutils

from addons.destination import point_at


def test_an_absolute_form_request_goes_on_in_origin_form_with_the_clients_host() -> None:
    request = tutils.treq(host="other.example", authority=b"other.example:80", path=b"/x")
    request.headers["host"] = "app.example"
    point_at(request, "https", ("127.0.0.1", 8443))
    assert (request.scheme, request.host, request.port) == ("https", "127.0.0.1", 8443)
    assert request.authority == ""
    assert request.host_header == "app.example"
    assert request.url == "https://127.0.0.1:8443/x"


def test_an_http2_request_keeps_its_authority_as_the_clients_host() -> None:
    request = tutils.treq(http_version=b"HTTP/2.0", authority=b"app.example", path=b"/x")
    point_at(request, "http", ("127.0.0.1", 8080))
    assert (request.host, request.port) == ("127.0.0.1", 8080)
    assert request.authority == "app.example"
