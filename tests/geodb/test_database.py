import logging
import shutil
from ipaddress import ip_address
from pathlib import Path

import pytest

from geodb.database import DatabaseError, open_database
from tests.support.geoip import ASN, BROKEN_CITY, CITY, COUNTRY, build, geoip_file


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("81.2.69.142", "GB"),
        ("89.160.20.112", "SE"),
        ("216.160.83.56", "US"),
        ("2001:218::1", "JP"),
        ("2a02:cf40::1", "NO"),
        ("8.8.8.8", None),
        ("175.16.199.1", None),
    ],
)
def test_countries_of_known_addresses(address: str, country: str | None) -> None:
    database = open_database(geoip_file(COUNTRY), "country")
    assert database.country(ip_address(address)) == country
    assert database.lookup_errors == 0
    assert database.database_type == "GeoLite2-Country"


def test_the_commercial_country_database_reads_the_same() -> None:
    database = open_database(geoip_file("GeoIP2-Country-Test.mmdb"), "country")
    assert database.country(ip_address("81.2.69.142")) == "GB"
    assert database.country(ip_address("2001:218::1")) == "JP"


def test_asn_and_organisation() -> None:
    database = open_database(geoip_file(ASN), "asn")
    assert database.asn(ip_address("1.128.0.1")) == (1221, "Telstra Pty Ltd")
    assert (database.asn(ip_address("12.81.92.1")) or (None,))[0] == 7018
    assert database.asn(ip_address("89.160.20.112")) == (29518, "Bredband2 AB")
    assert database.asn(ip_address("81.2.69.142")) is None
    assert database.database_type == "GeoLite2-ASN"


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        (CITY, "country", "is a GeoIP2-City database; geoip.country_db needs a Country database"),
        (BROKEN_CITY, "country", "is a GeoIP2-City database"),
        (ASN, "country", "is a GeoLite2-ASN database; geoip.country_db needs a Country"),
        (COUNTRY, "asn", "is a GeoLite2-Country database; geoip.asn_db needs an ASN database"),
    ],
)
def test_a_database_of_the_wrong_kind_is_refused(name: str, kind: str, reason: str) -> None:
    with pytest.raises(DatabaseError) as refused:
        open_database(geoip_file(name), kind)  # type: ignore[arg-type]
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # a download cut short
        lambda data: data[:-200],  # the metadata at the end cut off
        lambda data: b"",
        lambda data: b"<html>502 Bad Gateway</html>",
    ],
)
def test_a_corrupt_file_is_refused(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "GeoLite2-Country.mmdb"
    path.write_bytes(damage(geoip_file(COUNTRY).read_bytes()))  # type: ignore[operator]
    with pytest.raises(DatabaseError) as refused:
        open_database(path, "country")
    assert "is not a MaxMind-format database (corrupt, truncated" in str(refused.value)


def test_missing_file_and_directory_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as missing:
        open_database(tmp_path / "nope.mmdb", "country")
    assert "no such file (`warren geodb fetch` downloads one" in str(missing.value)
    with pytest.raises(DatabaseError) as directory:
        open_database(tmp_path, "asn")
    assert "is a directory" in str(directory.value)


def test_a_damaged_record_answers_unknown_and_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = build(tmp_path, "192.0.2.0/24,ZZ\n198.51.100.0/24,DE\n")
    data = bytearray(path.read_bytes())
    at = data.index(b"\x42ZZ")  # the string "ZZ": control byte 0x42, then its two bytes
    data[at] = 0x00  # an extended type byte follows: 7 + ord("Z"), which does not exist
    path.write_bytes(bytes(data))
    database = open_database(path, "country")  # the probes do not reach 192.0.2.0/24
    with caplog.at_level(logging.ERROR, "warren.geodb"):
        assert database.country(ip_address("192.0.2.1")) is None
        assert database.country(ip_address("192.0.2.2")) is None
    assert database.country(ip_address("198.51.100.1")) == "DE"
    assert database.lookup_errors == 2
    assert len([r for r in caplog.records if "treated as unknown" in r.message]) == 1


def test_the_reader_keeps_its_own_copy_whatever_happens_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-Country.mmdb"
    shutil.copy(geoip_file(COUNTRY), path)
    database = open_database(path, "country")
    # Rewritten in place, truncated, then deleted: a mapped file would now be garbage or SIGBUS.
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(b"\0" * 100)
    assert database.country(ip_address("81.2.69.142")) == "GB"
    path.unlink()
    assert database.country(ip_address("2a02:cf40::1")) == "NO"


def test_ipv6_against_an_ipv4_only_database_is_unknown_not_an_error(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="Test-Country")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    database = open_database(tmp_path / "v4.mmdb", "country")
    assert database.country(ip_address("198.51.100.7")) == "DE"
    assert database.country(ip_address("2001:db8::1")) is None
    assert database.lookup_errors == 0
