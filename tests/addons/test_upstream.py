"""What the backend receives (addons.upstream, core.forwarding): a real gateway in front of a
backend that records raw bytes, and one from Python's standard library (wsgiref) that maps
header names the CGI way and joins repeated ones."""

import base64
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from addons.exchange import exchange_of
from tests.addons.test_identify import BROWSER, cookie
from tests.addons.test_identify import flow as http_flow
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.inprocess import flow, pack, respond, run
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_raw, status_of, statuses
from tests.support.signin_pack import PORTAL, USERS, signin_pack, write_user
from tests.support.waiting import eventually
from tests.support.wsgi import WsgiBackend


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


# One backend of each kind and a gateway in front of it serve the module: each test looks only
# for its own marker. Tests that need other settings or another backend start their own.


@pytest.fixture(scope="module")
def raw_backend() -> Iterator[RawBackend]:
    with RawBackend() as backend:
        yield backend


@pytest.fixture(scope="module")
def upgrading_backend() -> Iterator[RawBackend]:
    with RawBackend(upgrade=True) as backend:
        yield backend


@pytest.fixture(scope="module")
def wsgi_backend() -> Iterator[WsgiBackend]:
    with WsgiBackend() as backend:
        yield backend


@pytest.fixture(scope="module")
def raw_gateway(raw_backend: RawBackend, start_module_gateway: GatewayFactory) -> Gateway:
    return start_module_gateway(policy(raw_backend.port), name="raw")


@pytest.fixture(scope="module")
def upgrading_gateway(
    upgrading_backend: RawBackend, start_module_gateway: GatewayFactory
) -> Gateway:
    return start_module_gateway(policy(upgrading_backend.port), name="upgrading")


@pytest.fixture(scope="module")
def cgi_gateway(wsgi_backend: WsgiBackend, start_module_gateway: GatewayFactory) -> Gateway:
    extra = f"""\
  team:
    host: team.test
    auth: {{basic_auth: true}}
    targets: [{{host: 127.0.0.1, port: {wsgi_backend.port}}}]
"""
    return start_module_gateway(policy(wsgi_backend.port, extra), name="cgi")


def head_of(request: bytes) -> dict[bytes, list[bytes]]:
    fields: dict[bytes, list[bytes]] = {}
    for line in request.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


@pytest.mark.parametrize("upgrade", ["h2c", "H2C", "foo, h2c", "foo", "websocket"])
def test_no_upgrade_but_websocket_reaches_the_backend_and_the_next_request_is_checked(
    upgrade: str, upgrading_backend: RawBackend, upgrading_gateway: Gateway
) -> None:
    gateway = upgrading_gateway
    tag = marker()
    # `websocket` without Sec-WebSocket-Key/Version is no WebSocket handshake: not carried on.
    attack = (
        f"GET /{tag}/up HTTP/1.1\r\nHost: pub.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        f"Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        f"GET /admin/{tag} HTTP/1.1\r\nHost: pub.test\r\n\r\n"
    ).encode()
    answer = send_raw(gateway.port, attack, timeout=3)
    assert statuses(answer) == [200, 403]
    first = upgrading_backend.wait_for(f"/{tag}/up".encode())
    fields = head_of(first)
    assert b"upgrade" not in fields
    assert b"http2-settings" not in fields
    assert b"connection" not in fields
    assert all(f"/admin/{tag}".encode() not in c for c in upgrading_backend.connections())


class SwitchingBackend:
    """Answers every request `101 Switching Protocols` to `foo`, whatever it asked, then keeps
    every byte: what a hostile or buggy application might do."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    self.received += connection.recv(65536)
                    connection.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\n"
                        b"Connection: Upgrade\r\n\r\n"
                    )
                    while chunk := connection.recv(65536):
                        self.received += chunk
                except OSError:
                    pass


@pytest.fixture
def switching_backend() -> Iterator[SwitchingBackend]:
    backend = SwitchingBackend()
    yield backend
    backend.server.close()


def test_a_101_without_a_websocket_upgrade_is_answered_502_and_the_connection_closed(
    switching_backend: SwitchingBackend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(switching_backend.port))
    tag = marker()
    attack = (
        f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\n\r\n"
        f"GET /admin/{tag} HTTP/1.1\r\nHost: pub.test\r\n\r\n"
    ).encode()
    answer = send_raw(gateway.port, attack, timeout=3)
    assert statuses(answer) == [502]
    assert f"/admin/{tag}".encode() not in bytes(switching_backend.received)
    assert "switched protocols" in gateway.logs()


def test_connection_nominated_headers_do_not_reach_the_backend_next_to_warrens(
    raw_backend: RawBackend, raw_gateway: Gateway
) -> None:
    gateway = raw_gateway
    tag = marker()
    request = (
        f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\n"
        "Connection: keep-alive, X-Forwarded-For, X-Real-IP, Remote-User, X-Warren-Assertion\r\n"
        "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n"
        "X-Forwarded-For: 6.6.6.6\r\n\r\n"
    ).encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 200
    fields = head_of(raw_backend.wait_for(tag.encode()))
    for name in (b"keep-alive", b"te", b"proxy-authorization"):
        assert name not in fields
    assert fields[b"connection"] == [b"keep-alive"]  # the client's own word, no nomination
    assert fields[b"x-forwarded-for"] == [b"127.0.0.1"]
    assert fields[b"x-real-ip"] == [b"127.0.0.1"]


def test_identity_headers_spelt_with_underscores_never_reach_a_cgi_backend(
    wsgi_backend: WsgiBackend, cgi_gateway: Gateway
) -> None:
    gateway = cgi_gateway
    tag = marker()
    forged = (
        "Remote_User: admin\r\nRemote_Groups: admins\r\nRemote_Email: a@evil.test\r\n"
        "X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Host: evil.test\r\nX_Warren_Assertion: x\r\n"
        "X-Webauth-User: admin\r\nX_WEBAUTH_USER: admin\r\nX-Authentik-Username: admin\r\n"
        "X-Authelia-User: admin\r\nCf-Access-Authenticated-User-Email: a@evil.test\r\n"
        "Tailscale-User-Login: admin\r\n"
    )
    request = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\n{forged}\r\n".encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 200
    environ = wsgi_backend.wait_for(tag)
    for key in ("HTTP_REMOTE_USER", "HTTP_REMOTE_GROUPS", "HTTP_REMOTE_EMAIL",
                "HTTP_X_WARREN_ASSERTION", "HTTP_X_WEBAUTH_USER", "HTTP_X_AUTHENTIK_USERNAME",
                "HTTP_X_AUTHELIA_USER", "HTTP_CF_ACCESS_AUTHENTICATED_USER_EMAIL",
                "HTTP_TAILSCALE_USER_LOGIN", "REMOTE_USER"):  # fmt: skip
        assert key not in environ, key
    assert environ["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert environ["HTTP_X_FORWARDED_HOST"] == "pub.test"


def test_strip_headers_replaces_the_default_list(
    wsgi_backend: WsgiBackend, start_gateway: GatewayFactory
) -> None:
    extra = "strip_headers: [X-Legacy-User, X-Team-*]\n"
    gateway = start_gateway(policy(wsgi_backend.port, extra))
    tag = marker()
    request = (
        f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\nX_Legacy_User: admin\r\n"
        "X-Team-Role: owner\r\nX-Webauth-User: kept\r\nRemote_User: admin\r\n\r\n"
    ).encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 200
    environ = wsgi_backend.wait_for(tag)
    assert "HTTP_X_LEGACY_USER" not in environ
    assert "HTTP_X_TEAM_ROLE" not in environ
    assert "HTTP_REMOTE_USER" not in environ  # Warren's own names always go
    assert environ["HTTP_X_WEBAUTH_USER"] == "kept"


def test_absolute_form_goes_on_in_origin_form_with_the_clients_host(
    raw_backend: RawBackend, raw_gateway: Gateway
) -> None:
    gateway = raw_gateway
    tag = marker()
    request = f"GET http://other.test/{tag}?q=1 HTTP/1.1\r\nHost: pub.test\r\n\r\n".encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 200
    seen = raw_backend.wait_for(tag.encode())
    assert seen.startswith(f"GET /{tag}?q=1 HTTP/1.1\r\n".encode())
    assert head_of(seen)[b"host"] == [b"pub.test"]
    denied = f"GET http://pub.test/admin/{tag} HTTP/1.1\r\nHost: pub.test\r\n\r\n".encode()
    assert status_of(send_raw(gateway.port, denied, timeout=2)) == 403


def test_a_websocket_upgrade_still_goes_through(
    upgrading_backend: RawBackend, upgrading_gateway: Gateway
) -> None:
    gateway = upgrading_gateway
    tag = marker()
    handshake = (
        f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    send_raw(gateway.port, handshake, timeout=2)
    fields = head_of(upgrading_backend.wait_for(tag.encode()))
    assert fields[b"upgrade"] == [b"websocket"]
    assert fields[b"connection"] == [b"Upgrade"]
    assert "switched protocols" not in gateway.logs()


def test_websockets_pass_through(backend: Backend, start_gateway: GatewayFactory) -> None:
    import asyncio

    import aiohttp

    gateway = start_gateway(policy(backend.port))

    async def talk() -> list[str]:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{gateway.port}/.ws"
            async with session.ws_connect(url, headers={"Host": "pub.test"}) as socket:
                replies = []
                for text in ("one", "two"):
                    await socket.send_str(text)
                    replies.append((await socket.receive(timeout=5)).data)
                return replies

    assert asyncio.run(talk()) == ["echo: one", "echo: two"]


def test_a_signed_in_user_is_the_only_identity_a_cgi_backend_reads(
    wsgi_backend: WsgiBackend, cgi_gateway: Gateway
) -> None:
    gateway = cgi_gateway
    write_user(gateway.directory / "users.yaml", "alice", ("staff",))
    tag = marker()
    credentials = base64.b64encode(b"alice:correct horse battery").decode()
    request = (
        f"GET /{tag} HTTP/1.1\r\nHost: team.test\r\nAuthorization: Basic {credentials}\r\n"
        "Remote_User: admin\r\nRemote_Groups: admins\r\nX_Webauth_User: admin\r\n\r\n"
    ).encode()
    eventually(lambda: status_of(send_raw(gateway.port, request, timeout=5)) == 200)
    environ = wsgi_backend.wait_for(tag)
    assert environ["HTTP_REMOTE_USER"] == "alice"  # not "admin,alice"
    assert environ["HTTP_REMOTE_GROUPS"] == "staff"
    assert "HTTP_X_WEBAUTH_USER" not in environ
    assert "HTTP_AUTHORIZATION" not in environ


def test_the_clients_connection_close_is_honoured(
    raw_backend: RawBackend, raw_gateway: Gateway
) -> None:
    gateway = raw_gateway
    tag = marker()
    request = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n"
    started = time.monotonic()
    answer = send_raw(gateway.port, request.encode(), timeout=8)
    assert statuses(answer) == [200]
    assert time.monotonic() - started < 5  # closed after the answer, not at the head timeout
    fields = head_of(raw_backend.wait_for(tag.encode()))
    assert fields[b"connection"] == [b"close"]
    assert b"x-a" not in fields


# In-process (tests.support.inprocess): the headers a request goes on with, and counted out.


def test_identity_and_forwarding_headers_from_clients_are_replaced(tmp_path: Path) -> None:
    forged = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "gopher"),
        ("Remote-User", "admin"),
        ("Remote-Groups", "admins"),
        ("remote-email", "a@b"),
        ("X-Warren-Assertion", "x"),
        ("X-Forwarded-Uri", "/public"),
        ("X-Real-IP", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6"),
    ]
    with pack(tmp_path) as (context, _):
        made = run(context, flow("app.example", "/", headers=forged))
        headers = made.request.headers
        assert headers.get_all("x-forwarded-for") == ["198.51.100.7"]
        assert headers.get_all("x-real-ip") == ["198.51.100.7"]
        for name in (
            "remote-user",
            "remote-groups",
            "remote-email",
            "x-warren-assertion",
            "x-forwarded-uri",
            "forwarded",
        ):
            assert name not in headers


def test_least_conn_counts_requests_out(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, runtime):
        made = run(context, flow("app.example"))
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.target is not None
        from core.balance import target_key

        assert runtime.upstreams.active(target_key(exchange.target)) == 1
        respond(context, made)
        assert runtime.upstreams.active(target_key(exchange.target)) == 0


# In-process with sign-in configured (tests.support.signin_pack): who the application hears of.


def test_a_session_reaches_the_application_as_identity_headers(tmp_path: Path) -> None:
    with signin_pack(tmp_path, users={**USERS, "alice": ("staff", "ops")}) as n:
        token = n.session("app.example", groups=("staff", "ops"))
        made = run(n.context, http_flow("app.example", "/", headers=[cookie(token), BROWSER]))
        assert made.response is None
        headers = made.request.headers
        assert headers["remote-user"] == "alice"
        assert headers["remote-email"] == "alice@example.com"
        assert headers["remote-groups"] == "staff,ops"
        assert headers["cookie"] == "theme=dark; lang=en"  # Warren's cookie never reaches it
        assertion = headers["x-warren-assertion"]
        public = jwt.PyJWKSet.from_dict(n.keys.jwks())[jwt.get_unverified_header(assertion)["kid"]]
        claims = jwt.decode(
            assertion, public, algorithms=["EdDSA"], audience="app.example", issuer=PORTAL
        )
        assert claims["sub"] == "alice"
        assert claims["groups"] == ["staff", "ops"]
        assert claims["exp"] - claims["iat"] <= 60
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.user == "alice"


def test_forged_identity_headers_are_replaced(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        forged = [("Remote-User", "admin"), ("X-Warren-Assertion", "x"), ("Remote-Groups", "root")]
        token = n.session("app.example")
        made = run(n.context, http_flow("app.example", "/", headers=[cookie(token), *forged]))
        assert made.request.headers.get_all("remote-user") == ["alice"]
        assert made.request.headers.get_all("remote-groups") == ["staff"]
        assert len(made.request.headers.get_all("x-warren-assertion")) == 1


def test_an_application_cannot_set_warren_cookies(tmp_path: Path) -> None:
    from mitmproxy.test import tutils

    with signin_pack(tmp_path) as n:
        made = run(n.context, http_flow("public.example", "/"))
        made.response = tutils.tresp()
        made.response.headers.set_all(
            "set-cookie",
            ["warren_session=planted; Path=/", "__Host-warren_share=x", "app=1; Path=/"],
        )
        from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook

        from tests.support.inprocess import trigger

        trigger(n.context, made, HttpResponseHeadersHook)
        respond(n.context, made)
        assert made.response.headers.get_all("set-cookie") == ["app=1; Path=/"]


def test_the_portal_keeps_its_own_cookies(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        jar = ("Cookie", "warren_portal=p; warren_csrf=c; warren_session=s; other=1")
        made = run(n.context, http_flow("auth.example", "/sign-in", headers=[jar]))
        assert made.request.headers["cookie"] == "warren_portal=p; warren_csrf=c; other=1"


def test_an_ipv6_target_is_reached_and_health_checked(start_gateway: GatewayFactory) -> None:
    with RawBackend(host="::1") as backend:
        gateway = start_gateway(
            "version: 1\nresources:\n  six:\n    host: six.test\n    auth: public\n"
            f"    targets: [{{host: '[::1]', port: {backend.port}}}]\n"
            "    health: {path: /healthz, interval: 1s}\n"
        )
        eventually(lambda: b"GET /healthz" in b"".join(backend.requests()))
        tag = marker()
        assert gateway.get("six.test", f"/{tag}").status_code == 200
        assert f"GET /{tag} HTTP/1.1".encode() in backend.wait_for(tag.encode())
