"""Country and ASN rules through a real gateway, the client chosen by a trusted proxy's
X-Forwarded-For, looked up in MaxMind's test databases and in one `geodb build` made."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from addons.runtime import Runtime
from demo import processes
from tests.conftest import Backend, Gateway, GatewayFactory, eventually
from tests.support.geoip import ASN, CITY, COUNTRY, build, geoip_file

# Your own ranges, consulted before the public database: the LAN in Sweden, a VPN pool in DE.
OWN_RANGES = "192.168.0.0/16,SE\n10.0.0.0/8,DE,64512\n"


def policy(backend: Backend, kind: str = "") -> str:
    return f"""\
version: 1
trusted_proxies: [127.0.0.1/32]
resources:
  eu:
    host: eu.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, country_not: [GB, SE]}}
  telstra:
    host: telstra.example
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: allow, asn: AS1221}}
  open:
    host: open.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


def databases(tmp_path: Path) -> tuple[Path, str]:
    directory = tmp_path / "geoip"
    directory.mkdir()
    shutil.copy(geoip_file(COUNTRY), directory / "GeoLite2-Country.mmdb")
    shutil.copy(geoip_file(ASN), directory / "GeoLite2-ASN.mmdb")
    own = build(directory, OWN_RANGES, name="own.mmdb")
    settings = (
        f"geoip:\n  country_db: [{own}, {directory / 'GeoLite2-Country.mmdb'}]\n"
        f"  asn_db: [{own}, {directory / 'GeoLite2-ASN.mmdb'}]\n"
    )
    return directory, settings


def status_from(gateway: Gateway, client: str, host: str) -> int:
    tag = uuid.uuid4().hex[:12]
    response = gateway.get(host, f"/{tag}", headers={"X-Forwarded-For": client})
    return response.status_code


@pytest.mark.parametrize("kind", ["warren", "mitmdump"])
def test_country_and_asn_rules_decide_by_the_forwarded_client(
    tmp_path: Path, backend: Backend, start_gateway: GatewayFactory, kind: str
) -> None:
    _directory, settings = databases(tmp_path)
    gateway = start_gateway(policy(backend), settings=settings, kind=kind)
    expected = [
        ("81.2.69.142", "eu.example", 200),  # GB
        ("89.160.20.112", "eu.example", 200),  # SE
        ("216.160.83.56", "eu.example", 403),  # US
        ("2a02:cf40::1", "eu.example", 403),  # NO, over IPv6
        ("8.8.8.8", "eu.example", 403),  # in no database: country_not never lets it in
        ("192.168.1.20", "eu.example", 200),  # our LAN, SE by our own database
        ("10.1.2.3", "eu.example", 403),  # our VPN pool, DE
        ("172.16.0.1", "eu.example", 403),  # private, in no database: unknown
        ("1.128.0.1", "telstra.example", 200),  # AS1221: allowed without sign-in
        ("12.81.92.1", "telstra.example", 401),  # AS7018: no rule matched, sign in
        ("8.8.8.8", "telstra.example", 401),  # unknown AS: an allow rule does not match
        ("8.8.8.8", "open.example", 200),
    ]
    seen = [(ip, host, status_from(gateway, ip, host)) for ip, host, _ in expected]
    assert seen == expected
    # The peer itself is not trusted for anything but forwarding: without the header it is the
    # client, 127.0.0.1, loopback, unknown to every database.
    assert gateway.get("eu.example", "/").status_code == 403


def test_a_replaced_database_is_used_without_a_restart_and_a_bad_one_is_refused(
    tmp_path: Path, backend: Backend, start_gateway: GatewayFactory
) -> None:
    directory, settings = databases(tmp_path)
    gateway = start_gateway(policy(backend), settings=settings)
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
    (tmp_path / "policy.yaml").write_text(policy(backend))
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
    (tmp_path / "policy.yaml").write_text(policy(backend))
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
    assert runtime.geo is not None
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
    from tests.addons.support import flow, pack, run

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
