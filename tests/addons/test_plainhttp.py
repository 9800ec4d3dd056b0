"""warren.yaml's `http_listen` (addons.plainhttp) on a real gateway: ACME's HTTP-01 path is
answered from the node's shared state, everything else is a 308 to https, nothing reaches a
backend, and the main listener is not affected."""

import asyncio
import secrets
import uuid
from collections.abc import Iterator

import httpx
import pytest

from core.auth.signinstate import SqliteKV
from demo import processes
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_raw, status_of


@pytest.fixture(scope="module")
def backend() -> Iterator[RawBackend]:
    with RawBackend() as raw:
        yield raw


@pytest.fixture(scope="module")
def http_port() -> int:
    return processes.free_port()


@pytest.fixture(scope="module")
def gateway(backend: RawBackend, http_port: int, start_module_gateway: GatewayFactory) -> Gateway:
    policy = f"""\
version: 1
resources:
  pub:
    host: pub.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""
    return start_module_gateway(policy, settings=f"http_listen: 127.0.0.1:{http_port}\n")


def plain(http_port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5)


def publish(gateway: Gateway, token: str, answer: str) -> None:
    """What the ACME client does while the CA looks: the token in the node's shared state."""
    kv = SqliteKV(gateway.directory / "state" / "signin.sqlite3")
    asyncio.run(kv.put(f"acme:http-01:{token}", answer, 60))


def test_the_challenge_path_answers_the_key_authorization(gateway: Gateway, http_port: int) -> None:
    token = secrets.token_urlsafe(32)
    publish(gateway, token, f"{token}.thumbprint")
    with plain(http_port) as client:
        answer = client.get(f"/.well-known/acme-challenge/{token}", headers={"host": "any.test"})
    assert answer.status_code == 200
    assert answer.text == f"{token}.thumbprint"
    assert answer.headers["content-type"] == "application/octet-stream"


def test_an_unknown_token_is_404_and_not_redirected(gateway: Gateway, http_port: int) -> None:
    with plain(http_port) as client:
        path = f"/.well-known/acme-challenge/{secrets.token_urlsafe(32)}"
        assert client.get(path, headers={"host": "pub.test"}).status_code == 404


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_everything_else_is_a_308_to_the_same_host_and_path_over_https(
    method: str, gateway: Gateway, http_port: int, backend: RawBackend
) -> None:
    tag = uuid.uuid4().hex[:12]
    with plain(http_port) as client:
        answer = client.request(
            method, f"/{tag}/x?a=1&b=2", headers={"host": "PUB.test:80"}, content=b"body"
        )
    assert answer.status_code == 308
    assert answer.headers["location"] == f"https://pub.test:{gateway.port}/{tag}/x?a=1&b=2"
    assert not [r for r in backend.requests() if tag.encode() in r]


def test_a_malformed_head_on_the_plain_listener_is_still_refused(
    gateway: Gateway, http_port: int
) -> None:
    two_hosts = b"GET / HTTP/1.1\r\nHost: pub.test\r\nHost: evil.test\r\n\r\n"
    assert status_of(send_raw(http_port, two_hosts, timeout=2)) == 400
    no_host = b"GET /x HTTP/1.0\r\n\r\n"  # HTTP/1.0 may leave Host out: nothing to redirect to
    assert status_of(send_raw(http_port, no_host, timeout=2)) == 400


def test_the_main_listener_routes_as_before(gateway: Gateway, backend: RawBackend) -> None:
    tag = uuid.uuid4().hex[:12]
    assert gateway.get("pub.test", f"/{tag}").status_code == 200
    assert backend.wait_for(f"/{tag}".encode())
    token = secrets.token_urlsafe(32)
    publish(gateway, token, "not for this listener")
    answer = gateway.get("pub.test", f"/.well-known/acme-challenge/{token}")
    assert answer.text != "not for this listener"  # the application's, not Warren's
