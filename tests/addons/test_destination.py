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


def test_the_clients_header_fields_go_on_byte_for_byte() -> None:
    request = tutils.treq(host="other.example", path=b"/x")
    request.headers["Host"] = "App.Example:8080"
    before = request.headers.fields
    point_at(request, "http", ("10.0.0.5", 9000))
    assert request.headers.fields == before
    assert request.url == "http://10.0.0.5:9000/x"


def test_an_http10_request_without_host_gets_none() -> None:
    request = tutils.treq(http_version=b"HTTP/1.0", path=b"/x")  # its fields name no Host
    point_at(request, "http", ("10.0.0.5", 9000))
    assert "Host" not in request.headers
    assert (request.host, request.port) == ("10.0.0.5", 9000)
