"""The gateway's services (addons.runtime): built together from warren.yaml and policy.yaml
(`build_runtime`), kept current while they run (GeoIP databases, the sidecar's sites.json, target
health), closed together, and swapped whole. From files in-process, and in real gateways."""

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from addons.runtime import Runtime, RuntimeSlot, build_runtime
from core.problems import ConfigError
from core.tunnels import Forward, SiteState, encode_sites
from demo import processes
from geodb.service import GeoService
from tests.addons.test_rules import databases, status_from
from tests.addons.test_rules import policy as geo_policy
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.geoip import ASN, CITY, COUNTRY, build, geoip_file
from tests.support.inprocess import flow, pack, run
from tests.support.waiting import eventually

POLICY = """\
version: 1
resources:
  app: {host: app.example, auth: public, targets: [{host: 192.0.2.10, port: 8080}]}
"""

HASH = "d" * 64


def sites_policy(extra: str = "") -> str:
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


def write_sites(state: Path, online: bool, port: int, secret_sha256: str | None = None) -> None:
    # What the sidecar writes: home's tunnel ends on loopback here, its port 80 is the backend.
    forwards = [Forward("tcp", "10.9.9.9", 80, port)]
    state.mkdir(parents=True, exist_ok=True)
    site = SiteState("127.0.0.1", online, forwards, secret_sha256)
    (state / "sites.json").write_bytes(encode_sites({"home": site}))


def files(directory: Path, policy: str = POLICY, settings: str = "") -> Path:
    (directory / "policy.yaml").write_text(policy)
    config = directory / "warren.yaml"
    config.write_text(f"policy_file: policy.yaml\nstate_dir: state\n{settings}")
    return config


def runtime_from(config: Path) -> Runtime:
    return build_runtime(config, on_site_offline=lambda site: None)


def test_build_runtime_makes_every_service_from_the_files(tmp_path: Path) -> None:
    runtime = runtime_from(files(tmp_path))
    try:
        assert runtime.config == tmp_path / "warren.yaml"
        assert runtime.settings.policy_file == tmp_path / "policy.yaml"
        assert runtime.policy is runtime.store.current
        assert list(runtime.policy.resources) == ["app"]
        assert runtime.geo is None  # warren.yaml names no databases
        assert runtime.signin.portal_url is None
    finally:
        asyncio.run(runtime.close())


@pytest.mark.parametrize(
    ("policy", "settings", "message"),
    [
        ("version: 2\n", "", "policy.yaml:1: version: Input should be 1"),
        (POLICY, "storage: nowhere://\n", "storage"),
        (
            "version: 1\nresources: {x: {host: a.example}}\n",
            "",
            "resources.x: a resource needs targets",
        ),
    ],
    ids=["policy-version", "settings", "policy-field"],
)
def test_a_file_that_does_not_validate_raises_config_error(
    tmp_path: Path, policy: str, settings: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        runtime_from(files(tmp_path, policy, settings))


def test_a_public_url_no_resource_serves_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="warren.config"):
        runtime = runtime_from(files(tmp_path, settings="public_url: https://auth.example\n"))
    asyncio.run(runtime.close())
    assert "no resource in the policy serves auth.example" in caplog.text


def test_start_keeps_the_sites_current_and_close_stops_it(tmp_path: Path) -> None:
    config = files(tmp_path, sites_policy(), "reload_poll: 0.05s\n")
    runtime = runtime_from(config)
    state = tmp_path / "state"

    async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)

    async def go() -> None:
        assert runtime.sites.table.routable_sites() == set()
        await runtime.start()
        write_sites(state, True, 80, HASH)
        await until(lambda: runtime.sites.table.routable_sites() == {"home"})
        await runtime.close()
        write_sites(state, False, 80, HASH)
        await asyncio.sleep(0.3)
        assert runtime.sites.table.routable_sites() == {"home"}  # no longer watched

    asyncio.run(go())


def test_a_policy_reload_reaches_the_services_that_follow_it(tmp_path: Path) -> None:
    write_sites(tmp_path / "state", True, 80, HASH)
    config = files(tmp_path, sites_policy(), "reload_poll: 1h\n")
    runtime = runtime_from(config)
    assert runtime.sites.table.routable_sites() == {"home"}  # routable before start

    async def go() -> None:
        await runtime.start()
        (tmp_path / "policy.yaml").write_text(sites_policy().replace(HASH, "e" * 64))
        await runtime.store.reload_async()
        assert runtime.sites.table.routable_sites() == set()
        await runtime.close()

    asyncio.run(go())


def test_a_swapped_runtime_is_handed_back_for_closing_and_listeners_hear_of_it(
    tmp_path: Path,
) -> None:
    first, second = runtime_from(files(tmp_path)), runtime_from(tmp_path / "warren.yaml")
    slot = RuntimeSlot()
    heard: list[Runtime] = []
    slot.on_swap(heard.append)
    assert slot.runtime is None
    assert slot.swap(first) is None
    assert slot.swap(second) is first
    assert slot.runtime is second
    assert heard == [first, second]
    for runtime in (first, second):
        asyncio.run(runtime.close())


def test_a_site_target_follows_the_sidecars_word(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(sites_policy())
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


def test_a_changed_secret_in_the_gateways_policy_stops_routing_before_the_sidecar_says(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(sites_policy())
    write_sites(gateway.directory / "state", True, backend.port, HASH)
    tag = uuid.uuid4().hex
    eventually(lambda: gateway.get("app.example", f"/{tag}-1").status_code == 200)
    # sites.json still says online, under the old secret: the policy alone takes it out.
    gateway.policy.write_text(sites_policy().replace(HASH, "e" * 64))
    eventually(lambda: gateway.get("app.example", f"/{tag}-2").status_code == 503)
    assert "its secret changed" in gateway.logs()
    assert gateway.get("app.example", f"/{tag}-3").status_code == 503
    assert backend.received(f"{tag}-3") == []
    gateway.policy.write_text(sites_policy())
    eventually(lambda: gateway.get("app.example", f"/{tag}-4").status_code == 200)


@pytest.fixture(scope="module")
def health_gateway(backend: Backend, start_module_gateway: GatewayFactory) -> Gateway:
    closed = processes.free_port()
    extra = f"""\
  pair:
    host: pair.example
    auth: public
    health: {{path: /.health, interval: 0.2s, timeout: 0.5s}}
    targets: [{{host: 127.0.0.1, port: {backend.port}}}, {{host: 127.0.0.1, port: {closed}}}]
  dead:
    host: dead.example
    auth: public
    health: {{path: /.health, interval: 0.2s}}
    targets: [{{host: 127.0.0.1, port: {closed}}}]
  checked:
    host: checked.example
    auth: public
    health: {{path: /.health, interval: 0.2s}}
    targets: [{{site: home, host: 10.9.9.9, port: 80}}]
"""
    return start_module_gateway(sites_policy(extra))


def test_health_checks_take_a_dead_target_out_of_routing(health_gateway: Gateway) -> None:
    gateway = health_gateway
    eventually(lambda: gateway.get("dead.example", "/").status_code == 503)
    assert all(gateway.get("pair.example", f"/{i}").status_code == 200 for i in range(6))


def test_site_health_checks_go_through_the_tunnel(
    backend: Backend, health_gateway: Gateway
) -> None:
    gateway = health_gateway
    write_sites(gateway.directory / "state", True, backend.port)
    # Probed at 10.9.9.9:80 itself, the target would stay down; at the tunnel address it is up.
    eventually(lambda: gateway.get("checked.example", "/x").status_code == 200)


# GeoIP: the databases warren.yaml names, opened at start and kept current.


def test_a_replaced_database_is_used_without_a_restart_and_a_bad_one_is_refused(
    tmp_path: Path, backend: Backend, start_gateway: GatewayFactory
) -> None:
    directory, settings = databases(tmp_path)
    gateway = start_gateway(geo_policy(backend), settings=settings)
    assert status_from(gateway, "81.2.69.142", "eu.example") == 200
    country = directory / "GeoLite2-Country.mmdb"

    def install(source: Path) -> None:  # as `warren geodb fetch` does: one rename
        staged = directory / "staged.mmdb"
        shutil.copy(source, staged)
        os.replace(staged, country)

    install(build(tmp_path, "81.2.69.0/24,US\n", name="moved.mmdb"))
    eventually(lambda: status_from(gateway, "81.2.69.142", "eu.example") == 403)
    assert status_from(gateway, "89.160.20.112", "eu.example") == 403  # not in the new file

    install(geoip_file(CITY))
    eventually(lambda: "geoip reload refused" in gateway.logs())
    assert "is a GeoIP2-City database" in gateway.logs()
    assert status_from(gateway, "81.2.69.142", "eu.example") == 403  # the last good copy
    status = subprocess.run(
        [*processes.warren("status"), "-c", str(gateway.config)], capture_output=True, text=True
    )
    assert "'failed_reloads': 1" in status.stdout, status.stdout + status.stderr

    country.unlink()
    eventually(lambda: "is gone; still answering from the copy loaded at" in gateway.logs())
    assert status_from(gateway, "81.2.69.142", "eu.example") == 403
    install(geoip_file(COUNTRY))
    eventually(lambda: status_from(gateway, "81.2.69.142", "eu.example") == 200)


@pytest.mark.parametrize(
    ("geoip", "message"),
    [
        (
            f"{{country_db: missing.mmdb, asn_db: {geoip_file(ASN)}}}",
            "warren.yaml:4: geoip.country_db: {dir}/missing.mmdb: no such file",
        ),
        (
            f"{{country_db: {geoip_file(COUNTRY)}, asn_db: {geoip_file(CITY)}}}",
            "is a GeoIP2-City database; geoip.asn_db needs an ASN database",
        ),
    ],
    ids=["missing", "wrong-kind"],
)
def test_a_gateway_with_an_unusable_database_does_not_start(
    tmp_path: Path, backend: Backend, geoip: str, message: str
) -> None:
    (tmp_path / "policy.yaml").write_text(geo_policy(backend))
    config = tmp_path / "warren.yaml"
    port = processes.free_port()
    config.write_text(
        f"listen: 127.0.0.1:{port}\npolicy_file: policy.yaml\nstate_dir: state\ngeoip: {geoip}\n"
    )
    result = subprocess.run(
        [*processes.warren("gateway", "--config", str(config))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Warren cannot start" in result.stdout + result.stderr
    assert message.format(dir=tmp_path) in result.stdout + result.stderr


def test_geo_rules_without_a_database_keep_the_gateway_from_starting(
    tmp_path: Path, backend: Backend
) -> None:
    (tmp_path / "policy.yaml").write_text(geo_policy(backend))
    config = tmp_path / "warren.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{processes.free_port()}\npolicy_file: policy.yaml\nstate_dir: state\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "core", "gateway", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert (
        "resources.eu.rules[0].country_not: country_not conditions need a country database"
        in output
    )
    assert "resources.telstra.rules[0].asn: asn conditions need an ASN database" in output


def cache_misses(runtime: Runtime) -> tuple[int, int]:
    assert isinstance(runtime.geo, GeoService)  # the cache is geodb's own, behind core.geo
    current = runtime.geo.current
    return (
        current.country.cache_info().misses,  # type: ignore[attr-defined]
        current.asn.cache_info().misses,  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize(
    ("rule", "misses"),
    [
        ("{action: deny, path: /admin/*}", (0, 0)),
        ("{action: deny, country: [KP]}", (1, 0)),
        ("{action: deny, asn: [64512]}", (0, 1)),
        ("{action: deny, country_not: [GB], asn: [64512]}", (1, 1)),
    ],
)
def test_only_a_policy_with_geo_conditions_pays_for_lookups_and_only_the_kinds_it_uses(
    tmp_path: Path, rule: str, misses: tuple[int, int]
) -> None:
    text = f"""\
version: 1
rules: [{rule}]
resources:
  app: {{host: app.example, auth: public, targets: [{{host: 192.0.2.10, port: 80}}]}}
"""
    settings = f"geoip: {{country_db: {geoip_file(COUNTRY)}, asn_db: {geoip_file(ASN)}}}\n"
    with pack(tmp_path, text, settings) as (context, runtime):
        for _ in range(3):
            run(context, flow("app.example", "/x", peer="81.2.69.142"))
        assert cache_misses(runtime) == misses
