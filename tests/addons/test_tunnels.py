"""The gateway's side of tunnels, on loopback: targets on a site go where the sidecar's
sites.json says the site's tunnel ends, and leave routing while it is offline; sites register
through the gateway under /.warren/sites/."""

import uuid
from pathlib import Path

import httpx

from core.tunnels import Forward, encode_sites
from tests.conftest import Backend, GatewayFactory, eventually

HASH = "d" * 64


def policy(extra: str = "") -> str:
    return f"""\
version: 1
trusted_proxies: [127.0.0.3/32]
rules:
  - {{action: deny, cidr: 127.0.0.2/32}}
sites:
  home: {{secret_sha256: "{HASH}"}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{site: home, host: 10.9.9.9, port: 80}}]
{extra}"""


def write_sites(state: Path, online: bool, port: int) -> None:
    # What the sidecar writes: home's tunnel ends on loopback here, its port 80 is the backend.
    forwards = [Forward("tcp", "10.9.9.9", 80, port)]
    state.mkdir(parents=True, exist_ok=True)
    (state / "sites.json").write_bytes(encode_sites({"home": ("127.0.0.1", online, forwards)}))


def test_a_site_target_follows_the_sidecars_word(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy())
    state = gateway.directory / "state"
    tag = uuid.uuid4().hex
    # Never registered: no target left, 503.
    assert gateway.get("app.example", f"/{tag}-0").status_code == 503
    write_sites(state, True, backend.port)
    eventually(lambda: gateway.get("app.example", f"/{tag}-1").status_code == 200)
    assert backend.received(f"{tag}-1")
    # A file that does not read keeps the last good table.
    (state / "sites.json").write_text("{not json")
    eventually(lambda: "unreadable, keeping the sites" in gateway.logs())
    assert gateway.get("app.example", f"/{tag}-2").status_code == 200
    write_sites(state, False, backend.port)
    eventually(lambda: gateway.get("app.example", f"/{tag}-3").status_code == 503)
    assert "site home is OFFLINE" in gateway.logs()
    assert gateway.get("app.example", f"/{tag}-4").status_code == 503
    assert backend.received(f"{tag}-4") == []


def test_site_health_checks_go_through_the_tunnel(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    extra = """\
  checked:
    host: checked.example
    auth: public
    health: {path: /.health, interval: 0.2s}
    targets: [{site: home, host: 10.9.9.9, port: 80}]
"""
    gateway = start_gateway(policy(extra))
    write_sites(gateway.directory / "state", True, backend.port)
    # Probed at 10.9.9.9:80 itself, the target would stay down; at the tunnel address it is up.
    eventually(lambda: gateway.get("checked.example", "/x").status_code == 200)


def test_registration_is_carried_to_the_sidecar_under_the_global_rules(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    # The recording backend stands where the sidecar's API listens.
    gateway = start_gateway(policy(), settings=f"wireguard: {{api: 127.0.0.1:{backend.port}}}\n")
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
        policy()
        .replace(f'sites:\n  home: {{secret_sha256: "{HASH}"}}\n', "")
        .replace("site: home, ", "")
    )
    gateway = start_gateway(plain, settings=f"wireguard: {{api: 127.0.0.1:{backend.port}}}\n")
    tag = uuid.uuid4().hex
    response = gateway.get("node.example", f"/.warren/sites/register?{tag}")
    assert response.status_code == 404
    assert backend.received(tag) == []
