"""Request heads that read two ways are refused before anything is decided (addons.wellformed):
real gateways, raw sockets, a backend that records raw bytes and a wsgiref one that splits on
bare CR. One gateway in front of each backend serves the module; each test sends its own marker."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_h2, send_raw, status_of
from tests.support.tls import self_signed
from tests.support.wsgi import WsgiBackend


def policy(port: int) -> str:
    return f"""\
version: 1
resources:
  pub:
    host: pub.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {port}}}]
"""


def marker() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def raw_backend() -> Iterator[RawBackend]:
    """One recording backend for the module: each test looks only for its own marker."""
    with RawBackend() as backend:
        yield backend


@pytest.fixture(scope="module")
def wsgi_backend() -> Iterator[WsgiBackend]:
    with WsgiBackend() as backend:
        yield backend


@pytest.fixture(scope="module")
def cert() -> Path:
    return self_signed(["pub.test", "other.test"])


@pytest.fixture(scope="module")
def gateway(raw_backend: RawBackend, cert: Path, start_module_gateway: GatewayFactory) -> Gateway:
    """The module's gateway in front of the recording backend; TLS (with h2) and plain HTTP."""
    other = f"""\
  other:
    host: other.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {raw_backend.port}}}]
"""
    return start_module_gateway(policy(raw_backend.port) + other, settings=f"certs: [{cert}]\n")


@pytest.fixture(scope="module")
def cgi_gateway(wsgi_backend: WsgiBackend, start_module_gateway: GatewayFactory) -> Gateway:
    return start_module_gateway(policy(wsgi_backend.port), name="cgi")


@pytest.mark.parametrize(
    "fields",
    [
        b"X-A: a\rRemote-User: admin\r\n",  # a bare CR: wsgiref reads a second header
        b"X-A: a\x00b\r\n",
        b"X-A: a\r\n Remote-User: admin\r\n",  # obs-fold, RFC 9112 section 5.2
        b"X-A: a\r\n\tRemote-User: admin\r\n",
        b"X-A: \x1b[2J\r\n",
    ],
    ids=["bare-cr", "nul", "obs-fold-space", "obs-fold-tab", "escape"],
)
def test_control_characters_in_a_value_are_refused_not_forwarded(
    fields: bytes, wsgi_backend: WsgiBackend, cgi_gateway: Gateway
) -> None:
    gateway = cgi_gateway
    tag = marker()
    request = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\n".encode() + fields + b"\r\n"
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 400
    assert not [e for e in wsgi_backend.environs() if tag in e["PATH_INFO"]]


@pytest.mark.parametrize(
    "host",
    [b"pub.test:x@evil.test", b"pub.test:80@evil.test", b"pub.test:abc", b"pub.test:",
     b"pub.test:99999", b"user@pub.test", b"pub.test, evil.test"],
)  # fmt: skip
def test_an_invalid_host_is_400_and_nothing_is_forwarded(
    host: bytes, raw_backend: RawBackend, gateway: Gateway
) -> None:
    tag = marker()
    request = f"GET /{tag} HTTP/1.1\r\n".encode() + b"Host: " + host + b"\r\n\r\n"
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 400
    assert not [r for r in raw_backend.requests() if tag.encode() in r]


def test_two_host_fields_or_none_on_http11_are_400(
    raw_backend: RawBackend, gateway: Gateway
) -> None:
    tag = marker()
    two = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\nHost: evil.test\r\n\r\n".encode()
    none = f"GET /{tag} HTTP/1.1\r\nX-A: 1\r\n\r\n".encode()
    assert status_of(send_raw(gateway.port, two, timeout=2)) == 400
    assert status_of(send_raw(gateway.port, none, timeout=2)) == 400
    ok = f"GET /{tag}/ok HTTP/1.1\r\nHost: PUB.test.:{gateway.port}\r\n\r\n".encode()
    assert status_of(send_raw(gateway.port, ok, timeout=2)) == 200
    assert [r for r in raw_backend.requests() if tag.encode() in r] == [
        raw_backend.wait_for(f"/{tag}/ok".encode())
    ]


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Host"])
def test_connection_may_not_nominate_framing_or_host(
    name: str, raw_backend: RawBackend, gateway: Gateway
) -> None:
    tag = marker()
    request = (
        f"POST /{tag} HTTP/1.1\r\nHost: pub.test\r\nConnection: keep-alive, {name}\r\n"
        "Content-Length: 5\r\n\r\nhello"
    ).encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 400
    assert not [r for r in raw_backend.requests() if tag.encode() in r]


def test_too_many_or_too_large_header_fields_are_431(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    settings = "http: {max_headers: 20, max_head_size: 8KiB}\n"
    gateway = start_gateway(policy(raw_backend.port), settings=settings)
    tag = marker()
    many = "".join(f"X-{i}: {i}\r\n" for i in range(21))
    request = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\n{many}\r\n".encode()
    assert status_of(send_raw(gateway.port, request, timeout=2)) == 431
    large = f"GET /{tag} HTTP/1.1\r\nHost: pub.test\r\nX-Big: {'a' * 9000}\r\n\r\n".encode()
    assert status_of(send_raw(gateway.port, large, timeout=2)) == 431
    assert not [r for r in raw_backend.requests() if tag.encode() in r]


@pytest.fixture
def tls_gateway(
    raw_backend: RawBackend, cert: Path, gateway: Gateway
) -> tuple[int, Path, RawBackend]:
    return gateway.port, cert, raw_backend


def test_http2_host_that_differs_from_authority_is_400(
    tls_gateway: tuple[int, Path, RawBackend],
) -> None:
    port, cert, backend = tls_gateway
    tag = marker()
    headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"pub.test"),
               (b":path", f"/{tag}".encode()), (b"host", b"other.test")]  # fmt: skip
    answer = send_h2(port, "pub.test", headers, cert)
    # h2 itself refuses it with GOAWAY (RFC 9113 section 8.3.1); Warren's own check answers 400.
    assert answer.status == 400 or answer.reset is not None or answer.goaway is not None
    assert not [r for r in backend.requests() if tag.encode() in r]
    same = [*headers[:4], (b"host", b"pub.test")]
    assert send_h2(port, "pub.test", same, cert).status == 200
