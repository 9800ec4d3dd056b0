"""Warren's HTTP layers (addons.layers) in a real gateway: bounded heads, a head timeout, refused
bodies answered at once, trailers dropped, and every error answer a Warren page."""

import dataclasses
import inspect
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1

from addons import layers
from demo.processes import free_port
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.rawbackend import BODY, RawBackend
from tests.support.rawclient import send_h2, send_raw, status_of
from tests.support.tls import self_signed


def policy(port: int, extra: str = "") -> str:
    return f"""\
version: 1
resources:
  pub:
    host: pub.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {port}}}]
    rules:
      - {{action: deny, path: "/admin/*"}}
{extra}"""


def marker() -> str:
    return uuid.uuid4().hex[:12]


def test_what_the_layers_replace_is_still_where_they_expect_it() -> None:
    # A mitmproxy upgrade that renames these would silently leave its own layers in place.
    for name in ("read_headers", "read_body", "mark_done", "start", "send"):
        assert callable(getattr(_http1.Http1Server, name))
    for name in ("state_wait_for_request_headers", "state_consume_request_body",
                 "send_response", "flow_done", "check_killed", "_handle_event"):  # fmt: skip
        assert callable(getattr(http_layers.HttpStream, name))
    assert callable(_http1.make_error_response)
    layers.install()
    assert getattr(http_layers, "Http1Server") is layers.WarrenHttp1Server  # noqa: B009
    assert getattr(http_layers, "Http1Client") is layers.WarrenHttp1Client  # noqa: B009
    assert http_layers.HttpStream is layers.WarrenHttpStream


def test_the_retry_still_replaces_the_one_place_a_stream_opens_its_connection() -> None:
    # WarrenHttpStream.make_server_connection asks for the connection itself (so a failure can be
    # tried once more elsewhere, addons.retry): mitmproxy must still open it only there, with a
    # GetHttpConnection of these fields, and answer a failure through handle_protocol_error.
    source = inspect.getsource(layers.WarrenHttpStream.__bases__[0])  # mitmproxy's own
    assert source.count("GetHttpConnection(") == 1
    assert source.count("yield from self.make_server_connection()") == 2
    fields = [f.name for f in dataclasses.fields(http_layers.GetHttpConnection)]
    assert fields[:4] == ["address", "tls", "via", "transport_protocol"]
    assert callable(http_layers.HttpStream.handle_protocol_error)
    assert layers.ConnectFailedHook.name == "warren_connect_failed"


def test_the_raw_relay_still_stands_where_mitmproxy_puts_its_websocket_layer() -> None:
    # WarrenHttpStream.flow_done repeats mitmproxy's upgrade with a TCP relay (RELAY_RAW): that
    # upgrade must still be a child layer fed through `passthrough`, then the response's end.
    source = inspect.getsource(layers.WarrenHttpStream.__mro__[1].__dict__["flow_done"])
    assert "self.child_layer = websocket.WebsocketLayer(self.context, self.flow)" in source
    assert "self._handle_event = self.passthrough" in source
    assert "SendHttp(ResponseEndOfMessage(self.stream_id), self.context.client)" in source


def test_the_reverse_mode_is_still_built_from_where_warren_puts_its_own() -> None:
    # mitmproxy's reverse-proxy server builds `layers.modes.ReverseProxy` per connection, whose
    # Start sets the destination and a NextLayer, then finish_start; WarrenReverseProxy repeats
    # that for raw TCP with a NextLayer that asks at once.
    from mitmproxy.proxy import mode_servers
    from mitmproxy.proxy.layers import modes

    built = inspect.getsource(mode_servers.ReverseInstance.make_top_layer)
    assert "layers.modes.ReverseProxy(context)" in built
    start = inspect.getsource(layers.WarrenReverseProxy.__mro__[1].__dict__["_handle_event"])
    assert "self.context.server.address = spec.address" in start
    assert "self.child_layer = layer.NextLayer(self.context)" in start
    assert "yield from self.finish_start()" in start
    layers.install()
    assert modes.ReverseProxy is layers.WarrenReverseProxy


def test_a_head_that_never_ends_is_cut_at_the_limit_with_431(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(raw_backend.port))  # the default 64 KiB
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: pub.test\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(200):  # 6.4 MB unless the gateway stops reading first
                client.sendall(b"a" * 32768)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert status_of(answer) == 431
    assert b"mitmproxy" not in answer
    assert not raw_backend.requests()


def test_a_slow_head_gets_408_and_an_idle_connection_is_closed(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    settings = "http: {head_timeout: 1s}\n"
    gateway = start_gateway(policy(raw_backend.port), settings=settings)
    answer = send_raw(gateway.port, b"GET / HTTP/1.1\r\nHost: pub.te", timeout=10)
    assert status_of(answer) == 408
    started = time.monotonic()
    assert send_raw(gateway.port, b"", timeout=10) == b""  # closed, silently
    assert time.monotonic() - started < 9
    # A kept-alive connection gets its full time again after each answer.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as client:
        for _ in range(3):
            client.sendall(b"GET /ok HTTP/1.1\r\nHost: pub.test\r\n\r\n")
            answer = b""
            while not answer.endswith(BODY):
                answer += client.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(0.6)  # more than the timeout, summed over the three requests
    assert not [r for r in raw_backend.requests() if b"pub.te\r" in r]


def test_a_refused_large_upload_is_answered_at_once_without_a_crash(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(raw_backend.port))
    tag = marker()
    size = 64 << 20
    head = (
        f"POST /admin/{tag} HTTP/1.1\r\nHost: pub.test\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as client:

        def read() -> None:
            try:
                while chunk := client.recv(65536):
                    answer.extend(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        client.sendall(head)
        sent = 0
        try:
            while sent < size and not answer:
                client.sendall(b"x" * 65536)
                sent += 65536
        except OSError:
            pass
        reader.join(10)
    assert status_of(bytes(answer)) == 403
    assert sent < size  # the answer came while the body was still on its way
    logs = gateway.logs()
    assert "crashed" not in logs
    assert "Traceback" not in logs
    mentions = [line for line in logs.splitlines() if f"/admin/{tag}" in line]
    access = [line for line in mentions if '"event": "request"' in line]
    assert (len(mentions), len(access)) == (2, 1)  # the refusal once, and its access line
    assert not [r for r in raw_backend.requests() if tag.encode() in r]


def test_a_refused_small_body_is_drained_and_the_connection_kept(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(raw_backend.port))
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as client:
        for _ in range(3):
            response = client.post("/admin/x", content=b"y" * 100_000, headers={"host": "pub.test"})
            assert response.status_code == 403
        assert client.get("/fine", headers={"host": "pub.test"}).status_code == 200


def test_a_chunked_request_with_trailers_is_answered_and_its_trailers_dropped(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(raw_backend.port))
    tag = marker()
    request = (
        f"POST /{tag} HTTP/1.1\r\nHost: pub.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\nRemote-User: admin\r\nX-Trailer: 1\r\n\r\n"
        f"GET /{tag}/next HTTP/1.1\r\nHost: pub.test\r\n\r\n"
    ).encode()
    answer = send_raw(gateway.port, request, timeout=3)
    assert answer.count(b"HTTP/1.1 200") == 2
    seen = raw_backend.wait_for(f"POST /{tag}".encode())
    assert b"hello" in seen
    assert b"Remote-User" not in seen
    assert b"X-Trailer" not in seen
    assert "crashed" not in gateway.logs()


class Shared(NamedTuple):
    gateway: Gateway
    closed: int  # the port down.test and down.example are sent to, where nothing listens
    cert: Path  # for pub.test and down.test


@pytest.fixture(scope="module")
def shared(backend: Backend, start_module_gateway: GatewayFactory) -> Shared:
    """One gateway for the tests that only look at the answers they get and their own log lines."""
    closed = free_port()
    cert = self_signed(["pub.test", "down.test"])
    extra = f"""\
  down:
    host: [down.test, down.example]
    auth: public
    targets: [{{host: 127.0.0.1, port: {closed}}}]
"""
    gateway = start_module_gateway(policy(backend.port, extra), settings=f"certs: [{cert}]\n")
    return Shared(gateway, closed, cert)


def test_an_upstream_failure_is_a_warren_page_with_a_reference_for_api_clients_too(
    shared: Shared,
) -> None:
    gateway, down = shared.gateway, shared.closed
    with gateway.client() as client:
        api = client.get("/", headers={"host": "down.test", "accept": "application/json"})
        page = client.get("/", headers={"host": "down.test", "accept": "text/html"})
    assert api.status_code == page.status_code == 502
    document = json.loads(api.text)
    assert document["status"] == 502
    assert document["reference"] in gateway.logs()
    assert api.headers["content-type"] == "application/json"
    assert "Reference:" in page.text
    for response in (api, page):
        assert "server" not in response.headers
        assert "mitmproxy" not in response.text
        assert str(down) not in response.text


def test_upstream_failure_is_a_warren_502_page_that_names_no_address(shared: Shared) -> None:
    gateway, closed = shared.gateway, shared.closed
    response = gateway.get("down.example", "/", headers={"accept": "text/html"})
    assert response.status_code == 502
    assert "The application is not answering" in response.text
    assert str(closed) not in response.text
    assert "127.0.0.1" not in response.text
    assert f"127.0.0.1:{closed} failed" in gateway.logs()


def test_an_upstream_failure_over_http2_is_a_warren_page(shared: Shared) -> None:
    gateway, cert = shared.gateway, shared.cert
    headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"down.test"),
               (b":path", b"/"), (b"accept", b"application/json")]  # fmt: skip
    answer = send_h2(gateway.port, "down.test", headers, cert)
    assert answer.status == 502
    assert json.loads(answer.body)["reference"] in gateway.logs()


@pytest.mark.parametrize("line", [b"GET / HTTP/1.1 x\r\n", b"GET\r\n", b"G(T / HTTP/1.1\r\n"])
def test_an_unreadable_head_gets_a_warren_400(line: bytes, shared: Shared) -> None:
    gateway = shared.gateway
    answer = send_raw(gateway.port, line + b"Host: pub.test\r\n\r\n", timeout=3)
    assert status_of(answer) == 400
    assert b"mitmproxy" not in answer.lower()
    assert b'"reference"' in answer


def test_a_refused_http2_upload_is_answered_and_the_gateway_carries_on(shared: Shared) -> None:
    gateway, cert = shared.gateway, shared.cert
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"pub.test"),
               (b":path", b"/admin/upload")]  # fmt: skip
    answer = send_h2(
        gateway.port, "pub.test", headers, cert, body=b"z" * 16_000
    )  # within the first flow-control window
    assert answer.status == 403
    get = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"pub.test"),
           (b":path", b"/after")]  # fmt: skip
    assert send_h2(gateway.port, "pub.test", get, cert).status == 200
    assert "crashed" not in gateway.logs()
