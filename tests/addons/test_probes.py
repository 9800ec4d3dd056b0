"""/.warren/healthz and /.warren/readyz (addons.probes) on real gateways: on any host, before any
resource or rule, public JSON that names nothing, never cached."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory
from tests.support.rawclient import send_raw
from tests.support.redis import RedisServer, require_redis_server
from tests.support.waiting import eventually

SECRET_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def plain_policy(backend: Backend) -> str:
    return f"""\
version: 1
rules: [{{action: deny}}]
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


SITE_POLICY = f"""\
version: 1
sites:
  home-lab: {{secret_sha256: "{SECRET_HASH}"}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{site: home-lab, host: 127.0.0.1, port: 3000}}]
"""


def checks(body: bytes) -> dict[str, object]:
    found: dict[str, object] = json.loads(body)
    return found


def test_healthz_answers_on_any_host_before_rules_and_resources(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    gateway = start_module_gateway(plain_policy(backend), name="plain")
    for host in ("app.example", "unknown.example", "127.0.0.1"):
        answer = gateway.get(host, "/.warren/healthz?probe-marker")
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-type"] == "application/json"
        assert checks(answer.content) == {"status": "ok", "checks": {"gateway": "ok"}}
    assert backend.received("probe-marker") == []


def test_readyz_without_sites_or_shared_storage_is_ready(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    gateway = start_module_gateway(plain_policy(backend), name="ready")
    answer = gateway.get("unknown.example", "/.warren/readyz?from=monitor")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert checks(answer.content) == {
        "status": "ok",
        "checks": {"policy": "ok", "storage": "skipped", "tunnel": "skipped", "sites": "skipped"},
    }


def test_readyz_is_503_without_a_tunnel_and_names_no_site(
    start_module_gateway: GatewayFactory,
) -> None:
    gateway = start_module_gateway(
        SITE_POLICY, name="sites", settings="wireguard: {interface: warren-none0}\n"
    )
    answer = gateway.get("app.example", "/.warren/readyz")
    assert answer.status_code == 503
    assert checks(answer.content) == {
        "status": "not ready",
        "checks": {
            "policy": "ok",
            "storage": "skipped",
            "tunnel": "interface down",
            "sites": "none of 1 online",
        },
    }
    assert b"home-lab" not in answer.content
    assert SECRET_HASH.encode() not in answer.content
    assert gateway.get("app.example", "/.warren/healthz").status_code == 200  # alive all the same


def test_only_get_and_head_and_only_the_exact_paths(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    gateway = start_module_gateway(plain_policy(backend), name="methods")
    with gateway.client() as client:
        posted = client.post("/.warren/readyz", headers={"host": "app.example"})
        head = client.head("/.warren/healthz", headers={"host": "app.example"})
        other = client.get("/.warren/readyz/x", headers={"host": "app.example"})
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"
    assert head.status_code == 200
    assert head.content == b""
    assert other.status_code == 404  # Warren's other reserved paths answer as before


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_readyz_stays_ready_while_shared_storage_is_down(
    start_module_gateway: GatewayFactory, backend: Backend, redis: RedisServer
) -> None:
    gateway = start_module_gateway(
        plain_policy(backend), name="redis", settings=f"storage: {redis.url}\n"
    )
    answer = gateway.get("app.example", "/.warren/readyz")
    assert answer.status_code == 200
    assert checks(answer.content)["checks"] == {
        "policy": "ok",
        "storage": "ok",
        "tunnel": "skipped",
        "sites": "skipped",
    }
    redis.stop()

    def storage_down() -> bytes:
        found = gateway.get("app.example", "/.warren/readyz")
        assert found.status_code == 200  # the same outage on every node: none leaves DNS for it
        assert b'"storage": "ok"' not in found.content
        return found.content

    down = checks(eventually(storage_down))
    assert down["checks"] == {
        "policy": "ok",
        "storage": "unreachable: serving in its fail mode",
        "tunnel": "skipped",
        "sites": "skipped",
    }
    assert str(redis.port).encode() not in json.dumps(down).encode()


def test_a_head_answer_has_no_content_so_the_next_answer_on_the_connection_is_whole(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    # RFC 9110 §9.3.2: Warren's own answers (a probe, a refusal) to HEAD keep a GET's headers
    # and drop the content; bytes left behind would be read as the next answer's status line.
    gateway = start_module_gateway(plain_policy(backend), name="head")
    pipelined = b"".join(
        f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        for path, host in (("/.warren/healthz", "app.example"), ("/x", "unknown.example"))
    )
    pipelined += b"GET /.warren/healthz HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"
    answer = send_raw(gateway.port, pipelined)
    heads = answer.split(b"HTTP/1.1 ")
    assert [head[:3] for head in heads[1:]] == [b"200", b"404", b"200"], answer
    probe_head, refusal_head, probe_get = (part.partition(b"\r\n\r\n") for part in heads[1:])
    assert probe_head[2] == b""
    assert refusal_head[2] == b""
    assert b"content-length: 0" not in probe_head[0].lower()  # a GET's length, not zero
    assert json.loads(probe_get[2]) == {"status": "ok", "checks": {"gateway": "ok"}}
