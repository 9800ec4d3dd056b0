"""`warren geodb fetch` against a local server that packs real databases as each provider does."""

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from typer.testing import CliRunner

from geodb.database import open_database
from geodb.fetch import FetchError, edition, fetch
from tests.support.downloads import LICENSE_KEY, Downloads, Served, download_server, maxmind_archive
from tests.support.geoip import ASN, CITY, COUNTRY, geodb_cli, geoip_file

runner = CliRunner()
app = geodb_cli()
OLD = b"the database installed before"


@pytest.fixture
def server() -> Iterator[Downloads]:
    with download_server() as downloads:
        yield downloads


def this_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def last_month() -> str:
    return f"{datetime.now(UTC).replace(day=1) - timedelta(days=1):%Y-%m}"


def installed_before(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(OLD)
    return path


def nothing_left_behind(directory: Path) -> None:
    # Neither the download's working directory nor the half-made database file.
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_maxmind_downloads_verifies_and_installs_both_editions(
    tmp_path: Path, server: Downloads
) -> None:
    server.maxmind("GeoLite2-Country", geoip_file(COUNTRY).read_bytes())
    server.maxmind("GeoLite2-ASN", geoip_file(ASN).read_bytes())
    seen: list[tuple[str, int, int | None]] = []
    for name in ("GeoLite2-Country", "GeoLite2-ASN"):
        installed = fetch(
            edition("maxmind", name),
            tmp_path,
            base=server.url,
            license_key=LICENSE_KEY,
            on_progress=lambda *progress: seen.append(progress),
        )
        assert installed.path == tmp_path / f"{name}.mmdb"
        assert installed.path.stat().st_mode & 0o777 == 0o644  # a gateway's account reads it
        assert LICENSE_KEY not in installed.source
    country = open_database(tmp_path / "GeoLite2-Country.mmdb", "country")
    assert country.country(ip_address("81.2.69.142")) == "GB"
    asn = open_database(tmp_path / "GeoLite2-ASN.mmdb", "asn")
    assert asn.asn(ip_address("1.128.0.1")) == (1221, "Telstra Pty Ltd")
    label, done, total = seen[-1]
    assert (label, done) == ("GeoLite2-ASN.tar.gz", total)
    nothing_left_behind(tmp_path)


def test_a_checksum_mismatch_installs_nothing(tmp_path: Path, server: Downloads) -> None:
    server.maxmind("GeoLite2-Country", geoip_file(COUNTRY).read_bytes(), checksum="0" * 64)
    target = installed_before(tmp_path, "GeoLite2-Country.mmdb")
    with pytest.raises(FetchError) as refused:
        fetch(
            edition("maxmind", "GeoLite2-Country"),
            tmp_path,
            base=server.url,
            license_key=LICENSE_KEY,
        )
    assert "does not match the SHA-256 MaxMind publishes" in str(refused.value)
    assert target.read_bytes() == OLD
    nothing_left_behind(tmp_path)


def test_a_truncated_download_installs_nothing(tmp_path: Path, server: Downloads) -> None:
    archive = server.maxmind("GeoLite2-Country", geoip_file(COUNTRY).read_bytes())
    server.files["maxmind/GeoLite2-Country.tar.gz"] = Served(archive, cut_after=len(archive) // 3)
    target = installed_before(tmp_path, "GeoLite2-Country.mmdb")
    with pytest.raises(FetchError) as refused:
        fetch(
            edition("maxmind", "GeoLite2-Country"),
            tmp_path,
            base=server.url,
            license_key=LICENSE_KEY,
        )
    assert f"the download broke off after {len(archive) // 3} of {len(archive)} bytes" in str(
        refused.value
    )
    assert target.read_bytes() == OLD
    nothing_left_behind(tmp_path)


def test_a_rejected_license_key_is_said_and_never_shown(tmp_path: Path, server: Downloads) -> None:
    server.maxmind("GeoLite2-Country", geoip_file(COUNTRY).read_bytes())
    with pytest.raises(FetchError) as refused:
        fetch(
            edition("maxmind", "GeoLite2-Country"),
            tmp_path,
            base=server.url,
            license_key="wrong key",
        )
    message = str(refused.value)
    assert "refused (HTTP 401); check the license key" in message
    assert "wrong" not in message
    assert "license_key=***" in message


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (
            maxmind_archive("GeoLite2-Country", geoip_file(CITY).read_bytes()),
            "is a GeoIP2-City database",
        ),
        (
            maxmind_archive("GeoLite2-Country", b"x", member="README.txt"),
            "holds no GeoLite2-Country.mmdb",
        ),
        (b"<html>maintenance</html>", "is not a readable tar.gz"),
    ],
    ids=["wrong-kind", "no-database", "not-an-archive"],
)
def test_an_archive_without_the_right_database_installs_nothing(
    tmp_path: Path, server: Downloads, archive: bytes, reason: str
) -> None:
    import hashlib

    server.maxmind("GeoLite2-Country", b"")
    server.files["maxmind/GeoLite2-Country.tar.gz"] = Served(archive)
    server.files["maxmind/GeoLite2-Country.tar.gz.sha256"] = Served(
        f"{hashlib.sha256(archive).hexdigest()}  x.tar.gz\n".encode()
    )
    target = installed_before(tmp_path, "GeoLite2-Country.mmdb")
    with pytest.raises(FetchError) as refused:
        fetch(
            edition("maxmind", "GeoLite2-Country"),
            tmp_path,
            base=server.url,
            license_key=LICENSE_KEY,
        )
    assert reason in str(refused.value)
    assert target.read_bytes() == OLD
    nothing_left_behind(tmp_path)


def test_dbip_installs_this_months_file(tmp_path: Path, server: Downloads) -> None:
    server.dbip(f"dbip-country-lite-{this_month()}.mmdb.gz", geoip_file(COUNTRY).read_bytes())
    installed = fetch(edition("dbip", "country-lite"), tmp_path, base=server.url)
    assert installed.path == tmp_path / "dbip-country-lite.mmdb"
    assert installed.source == f"{server.url}/free/dbip-country-lite-{this_month()}.mmdb.gz"
    assert open_database(installed.path, "country").country(ip_address("2001:218::1")) == "JP"


def test_dbip_falls_back_to_last_month_early_in_the_month(
    tmp_path: Path, server: Downloads
) -> None:
    server.dbip(f"dbip-asn-lite-{last_month()}.mmdb.gz", geoip_file(ASN).read_bytes())
    installed = fetch(edition("dbip", "asn-lite"), tmp_path, base=server.url)
    assert installed.source.endswith(f"dbip-asn-lite-{last_month()}.mmdb.gz")
    assert server.requests[0].endswith(f"{this_month()}.mmdb.gz")
    found = open_database(installed.path, "asn").asn(ip_address("12.81.92.1"))
    assert found is not None
    assert found[0] == 7018


def test_dbip_not_published_at_all(tmp_path: Path, server: Downloads) -> None:
    with pytest.raises(FetchError) as refused:
        fetch(edition("dbip", "country-lite"), tmp_path, base=server.url)
    assert f"dbip-country-lite-{last_month()}.mmdb.gz: not found (HTTP 404)" in str(refused.value)


@pytest.mark.parametrize("damage", ["truncated-file", "cut-transfer", "not-a-database"])
def test_a_damaged_dbip_download_installs_nothing(
    tmp_path: Path, server: Downloads, damage: str
) -> None:
    name = f"dbip-country-lite-{this_month()}.mmdb.gz"
    compressed = server.dbip(name, geoip_file(COUNTRY).read_bytes())
    if damage == "truncated-file":  # served whole, but the file itself is cut short
        server.files[f"dbip/{name}"] = Served(compressed[: len(compressed) - 100])
        reason = "is damaged or truncated"
    elif damage == "cut-transfer":
        server.files[f"dbip/{name}"] = Served(compressed, cut_after=1000)
        reason = "the download broke off after 1000 of"
    else:
        server.files[f"dbip/{name}"] = Served(gzip.compress(b"\x00" * 5000))
        reason = "is not a MaxMind-format database"
    target = installed_before(tmp_path, "dbip-country-lite.mmdb")
    with pytest.raises(FetchError) as refused:
        fetch(edition("dbip", "country-lite"), tmp_path, base=server.url)
    assert reason in str(refused.value)
    assert target.read_bytes() == OLD
    nothing_left_behind(tmp_path)


def test_the_command_fetches_from_the_base_url_in_the_environment(
    tmp_path: Path, server: Downloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.dbip(f"dbip-country-lite-{this_month()}.mmdb.gz", geoip_file(COUNTRY).read_bytes())
    server.dbip(f"dbip-asn-lite-{this_month()}.mmdb.gz", geoip_file(ASN).read_bytes())
    monkeypatch.setenv("WARREN_DBIP_URL", server.url)
    result = runner.invoke(app, ["geodb", "fetch", "--provider", "dbip", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"installed {tmp_path}/dbip-country-lite.mmdb (GeoLite2-Country," in result.output
    assert f"installed {tmp_path}/dbip-asn-lite.mmdb (GeoLite2-ASN," in result.output


def test_the_command_reports_each_failure_and_exits_1(tmp_path: Path, server: Downloads) -> None:
    server.maxmind("GeoLite2-ASN", geoip_file(ASN).read_bytes())
    args = [
        "geodb",
        "fetch",
        "--provider",
        "maxmind",
        "--base-url",
        server.url,
        "--dir",
        str(tmp_path),
    ]
    result = runner.invoke(app, [*args, "--license-key", LICENSE_KEY])
    assert result.exit_code == 1
    assert "error: GeoLite2-Country: " in result.output
    assert "not found (HTTP 404)" in result.output
    assert f"installed {tmp_path}/GeoLite2-ASN.mmdb" in result.output
    no_key = runner.invoke(app, args, env={"MAXMIND_LICENSE_KEY": ""})
    assert "MaxMind needs a license key" in no_key.output
    city = runner.invoke(app, [*args, "--edition", "GeoLite2-City"])
    assert "Warren reads Country and ASN databases" in city.output
    many = runner.invoke(app, [*args, "-o", str(tmp_path / "x.mmdb")])
    assert "--output names one file" in many.output
