"""The rules (addons.rules): global, then the resource's, on the canonical path; the first that
matches decides. In the in-process pack; and country and ASN conditions in a real gateway, the
client chosen by a trusted proxy's X-Forwarded-For, looked up in MaxMind's test databases and in
one `geodb build` made. (The databases opened and kept current: tests/addons/test_runtime.py.)"""

import logging
import shutil
import uuid
from pathlib import Path

import pytest

from addons.exchange import exchange_of
from core.policy.rules import Outcome
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.geoip import ASN, COUNTRY, build, geoip_file
from tests.support.inprocess import flow, pack, run

POLICY = """\
version: 1
rules:
  - {action: deny, method: [TRACE]}
resources:
  app:
    host: app.example
    targets: [{host: 192.0.2.10, port: 8080}]
    rules:
      - {action: allow, path: "/public/*"}
      - {action: deny, path: "/admin/*"}
      - {action: pass, path: "/team/*"}
      - {action: allow, path: "/team/*"}
"""


def test_the_first_rule_that_matches_decides_global_rules_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="warren.gateway"),
        pack(tmp_path, POLICY) as (
            context,
            _,
        ),
    ):
        decided = []
        for method, path in [
            ("GET", "/public/x"),
            ("GET", "/admin/x"),
            ("GET", "/team/x"),
            ("GET", "/other"),
            ("TRACE", "/public/x"),
        ]:
            made = run(context, flow("app.example", path, method=method))
            exchange = exchange_of(made)
            assert exchange is not None
            verdict = exchange.verdict
            status = made.response.status_code if made.response is not None else None
            decided.append((verdict.outcome, verdict.rule.key if verdict.rule else None, status))
    assert decided == [
        (Outcome.ALLOW, "resources.app.rules[0]", None),  # no sign-in needed
        (Outcome.DENY, "resources.app.rules[1]", 403),
        (Outcome.SIGN_IN, "resources.app.rules[2]", 401),  # pass ends the rules: sign in
        (Outcome.SIGN_IN, None, 401),  # no rule matched: sign in
        (Outcome.DENY, "rules[0]", 403),
    ]
    assert "GET app.example/admin/x -> 403 resources.app.rules[1]" in caplog.text


def test_rules_match_the_canonical_path(tmp_path: Path) -> None:
    with pack(tmp_path, POLICY) as (context, _):
        for path in ("/%61dmin/x", "/public/../admin/x", "//admin//x", "/admin;v=1/x"):
            made = run(context, flow("app.example", path))
            assert made.response is not None, path
            assert made.response.status_code == 403, path


# Your own ranges, consulted before the public database: the LAN in Sweden, a VPN pool in DE, and
# a range marked "no country" as DB-IP marks reserved ones (ZZ, read as unknown).
OWN_RANGES = "192.168.0.0/16,SE\n10.0.0.0/8,DE,64512\n198.51.100.0/24,ZZ\n"


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


def country_and_asn_decide(gateway: Gateway) -> None:
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


def unknowns_resources(backend: Backend) -> str:
    def resource(name: str, rule: str, auth: str = "") -> str:
        return (
            f"  {name}:\n    host: {name}.example\n{auth}"
            f"    targets: [{{host: 127.0.0.1, port: {backend.port}}}]\n    rules: [{rule}]\n"
        )

    public = "    auth: public\n"
    return "".join(
        [
            resource("kp", "{action: deny, country: [KP]}", public),
            resource("att", "{action: deny, asn: [7018]}", public),
            resource("outside", "{action: deny, country_not: [DE]}", public),
            resource("known", "{action: deny, country_not: [GB, XX]}", public),
            resource("de", "{action: allow, country: [DE]}"),
            resource("unknown", "{action: allow, country: [XX]}"),
            resource("noasn", "{action: allow, asn: [AS0]}"),
            resource("europe", "{action: deny, region_not: [150]}", public),
            resource("nordic", "{action: allow, region: [154]}"),
            resource("americas", "{action: allow, region: ['019']}"),
        ]
    )


@pytest.fixture(scope="module")
def geo_gateway(
    backend: Backend, start_module_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> Gateway:
    _directory, settings = databases(tmp_path_factory.mktemp("geo"))
    return start_module_gateway(policy(backend) + unknowns_resources(backend), settings=settings)


def test_country_and_asn_rules_decide_by_the_forwarded_client(geo_gateway: Gateway) -> None:
    country_and_asn_decide(geo_gateway)


def test_an_address_the_databases_cannot_place_meets_two_valued_rules(
    geo_gateway: Gateway,
) -> None:
    gateway = geo_gateway
    expected = [
        ("kp", "8.8.8.8", 200),  # in no database: a deny on KP does not name it
        ("att", "81.2.69.142", 200),  # GB, absent from the ASN database: not AS7018
        ("att", "12.81.92.1", 403),  # AS7018
        ("outside", "8.8.8.8", 403),  # unknown is not DE
        ("outside", "10.1.2.3", 200),  # DE by our own file
        ("known", "8.8.8.8", 200),  # XX listed: unknowns are left alone
        ("known", "216.160.83.56", 403),  # US
        ("known", "81.2.69.142", 200),  # GB
        ("de", "8.8.8.8", 401),  # an allow on DE never admits an unknown: sign in
        ("de", "10.1.2.3", 200),
        ("unknown", "8.8.8.8", 200),  # XX names it
        ("unknown", "198.51.100.7", 200),  # ZZ in our file reads as unknown, XX
        ("unknown", "192.168.1.20", 401),  # SE by our own file: known
        ("noasn", "81.2.69.142", 200),  # AS0 names an address without a known AS
        ("noasn", "1.128.0.1", 401),  # AS1221
    ]
    seen = [(name, ip, status_from(gateway, ip, f"{name}.example")) for name, ip, _ in expected]
    assert seen == expected
    # Without a forwarded-for header the client is the trusted proxy itself, 127.0.0.1: loopback,
    # in no database. A health check from it is not turned away by a deny on KP.
    assert gateway.get("kp.example", "/").status_code == 200
    assert gateway.get("outside.example", "/").status_code == 403


def test_region_rules_decide_by_the_un_m49_region_of_the_country(geo_gateway: Gateway) -> None:
    expected = [
        ("europe", "81.2.69.142", 200),  # GB: Northern Europe, in Europe (150)
        ("europe", "10.1.2.3", 200),  # DE by our own file: Western Europe
        ("europe", "216.160.83.56", 403),  # US
        ("europe", "8.8.8.8", 403),  # unknown: in no region, so not in Europe
        ("nordic", "2a02:cf40::1", 200),  # NO, over IPv6: Northern Europe (154)
        ("nordic", "89.160.20.112", 200),  # SE
        ("nordic", "10.1.2.3", 401),  # DE is not in 154: sign in
        ("americas", "216.160.83.56", 200),  # US: Northern America, in the Americas (019)
        ("americas", "81.2.69.142", 401),
        ("americas", "8.8.8.8", 401),  # an allow on a region never admits an unknown
    ]
    seen = [(name, ip, status_from(geo_gateway, ip, f"{name}.example")) for name, ip, _ in expected]
    assert seen == expected
