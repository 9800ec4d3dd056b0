"""`/.warren/sites/` on any host goes to the sidecar's registration API (addons.siteapi), under
the global rules and decided on the canonical path: a real gateway, a backend standing in for the
sidecar's API; and the resource made for it, in-process."""

import socket
import uuid
from pathlib import Path

import httpx

from addons import siteapi
from core.settings import Settings, load_settings
from tests.addons.test_runtime import HASH, sites_policy
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.inprocess import flow, pack, run
from tests.support.rawbackend import RawBackend
from tests.support.rawclient import send_raw, status_of
from tests.support.waiting import eventually

API_SETTINGS = "wireguard: {api: 127.0.0.1:8765}\n"
PLAIN_POLICY = """\
version: 1
resources:
  app: {host: app.example, auth: public, targets: [{host: 192.0.2.10, port: 80}]}
"""
SECRET_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_only_a_policy_with_sites_routes_the_apis_paths(tmp_path: Path) -> None:
    with pack(tmp_path, sites_policy(), API_SETTINGS) as (context, runtime):
        api = siteapi.SiteApi()
        settings, policy = runtime.settings, runtime.policy
        resource = api.resource_for(settings, policy, "/.warren/sites/register")
        assert resource is not None
        assert (resource.name, resource.public) == (siteapi.NAME, True)
        assert [(t.host, t.port) for t in resource.model.targets] == [("127.0.0.1", 8765)]
        assert api.resource_for(settings, policy, "/.warren/sites/status") is resource
        assert api.resource_for(settings, policy, "/.warren/sitesx") is None
        made = run(context, flow("any.example", "/.warren/sites/register", method="POST"))
        assert made.response is None
        assert (made.request.host, made.request.port) == ("127.0.0.1", 8765)
    without_sites = tmp_path / "plain"
    without_sites.mkdir()
    with pack(without_sites, PLAIN_POLICY, API_SETTINGS) as (_, runtime):
        found = siteapi.SiteApi().resource_for(
            runtime.settings, runtime.policy, "/.warren/sites/register"
        )
        assert found is None


def test_the_apis_resource_is_made_again_when_its_listener_moves(tmp_path: Path) -> None:
    def settings(port: int) -> Settings:
        config = tmp_path / f"warren-{port}.yaml"
        config.write_text(f"wireguard: {{api: 127.0.0.1:{port}}}\n")
        return load_settings(config)

    with pack(tmp_path, sites_policy(), API_SETTINGS) as (_, runtime):
        api = siteapi.SiteApi()
        made = [
            api.resource_for(settings(port), runtime.policy, "/.warren/sites/register")
            for port in (8765, 8765, 8766)
        ]
    assert made[0] is not None
    assert made[1] is made[0]
    assert made[2] is not None
    assert made[2] is not made[0]
    assert made[2].model.targets[0].port == 8766


def test_registration_is_carried_to_the_sidecar_under_the_global_rules(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    # The recording backend stands where the sidecar's API listens.
    gateway = start_gateway(
        sites_policy(), settings=f"wireguard: {{api: 127.0.0.1:{backend.port}}}\n"
    )
    tag = uuid.uuid4().hex
    with gateway.client() as client:
        response = client.post(
            f"/.warren/sites/register?{tag}",
            json={"site": "home"},
            headers={"host": "node.example", "authorization": "Bearer s"},
        )
    assert response.status_code == 200, response.text
    (seen,) = backend.received(tag)
    assert seen["method"] == "POST"
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["authorization"] == "Bearer s"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with gateway.client(transport=transport) as client:
        denied = client.post(f"/.warren/sites/register?{tag}-2", headers={"host": "node.example"})
    assert denied.status_code == 403
    assert backend.received(f"{tag}-2") == []


def test_without_sites_the_reserved_path_is_not_carried(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    plain = (
        sites_policy()
        .replace(f'sites:\n  home: {{secret_sha256: "{HASH}"}}\n', "")
        .replace("site: home, ", "")
    )
    gateway = start_gateway(plain, settings=f"wireguard: {{api: 127.0.0.1:{backend.port}}}\n")
    tag = uuid.uuid4().hex
    response = gateway.get("node.example", f"/.warren/sites/register?{tag}")
    assert response.status_code == 404
    assert backend.received(tag) == []


def _with_sidecar(start_gateway: GatewayFactory, sidecar: int, application: int) -> Gateway:
    """A gateway whose policy has a site, with `sidecar` standing where the sidecar's API
    listens, and one public resource pub.test on `application`."""
    policy = f"""\
version: 1
sites:
  home: {{secret_sha256: "{SECRET_SHA256}"}}
resources:
  pub:
    host: pub.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {application}}}]
"""
    return start_gateway(policy, settings=f"wireguard: {{api: 127.0.0.1:{sidecar}}}\n")


def test_reserved_paths_are_decided_on_the_canonical_path(
    raw_backend: RawBackend, start_gateway: GatewayFactory
) -> None:
    with RawBackend() as sidecar:
        gateway = _with_sidecar(start_gateway, sidecar.port, raw_backend.port)
        tag = uuid.uuid4().hex[:12]
        escape = f"GET /.warren/sites/../../{tag} HTTP/1.1\r\nHost: pub.test\r\n\r\n".encode()
        assert status_of(send_raw(gateway.port, escape, timeout=2)) == 200
        assert raw_backend.wait_for(tag.encode()).startswith(f"GET /{tag} ".encode())
        into = f"GET /{tag}/../.warren/sites/register HTTP/1.1\r\nHost: pub.test\r\n\r\n"
        assert status_of(send_raw(gateway.port, into.encode(), timeout=2)) == 200
        seen = sidecar.wait_for(b"/.warren/sites/register")
        assert seen.startswith(b"GET /.warren/sites/register ")
        assert not [r for r in sidecar.requests() if tag.encode() in r]
        # Any host of the node reaches the API, as sites register through the node's own name.
        other = b"GET /.warren/sites/status HTTP/1.1\r\nHost: node.test\r\n\r\n"
        assert status_of(send_raw(gateway.port, other, timeout=2)) == 200
        sidecar.wait_for(b"/.warren/sites/status")


def _upgrade(port: int, host: str, path: str) -> socket.socket:
    """A WebSocket handshake through the gateway; the socket, once its 101 is read."""
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(4096)
    assert status_of(answer) == 101, answer
    return client


def test_the_sites_tunnel_stream_is_relayed_as_bytes_and_an_applications_websocket_is_not(
    start_gateway: GatewayFactory,
) -> None:
    # The sidecar's TCP/443 stream carries many small messages: relayed as bytes (addons.layers
    # RELAY_RAW), not parsed and hooked one by one. An application's WebSocket keeps mitmproxy's
    # frame parsing: what is no WebSocket frame after its 101 never reaches the application.
    with RawBackend(upgrade=True) as sidecar, RawBackend(upgrade=True) as application:
        gateway = _with_sidecar(start_gateway, sidecar.port, application.port)
        tag = uuid.uuid4().hex[:12]
        bytes_after = f"not a frame {tag}\r\n".encode()  # 'n': RSV bits no extension allows
        with _upgrade(gateway.port, "node.test", "/.warren/sites/tunnel?site=home") as stream:
            stream.sendall(bytes_after)
            eventually(lambda: any(c.endswith(bytes_after) for c in sidecar.connections()))
        with _upgrade(gateway.port, "pub.test", f"/{tag}-app") as websocket:
            websocket.sendall(bytes_after)
            websocket.settimeout(5)
            while websocket.recv(4096):  # the gateway closes a connection that broke framing
                pass
        (upgraded,) = [c for c in application.connections() if f"{tag}-app".encode() in c]
        assert bytes_after not in upgraded
