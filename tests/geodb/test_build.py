from ipaddress import ip_address
from pathlib import Path

import pytest

from geodb.build import BuildError, build, database_type, read_rows
from geodb.database import open_database


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ranges.csv"
    path.write_text(text)
    return path


def test_rows_become_a_database_both_kinds_can_read(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "network,country,asn\n"
        "# the office\n"
        "10.1.0.0/16,fr\n"
        "10.0.0.0/8, DE ,AS64500\n"
        "\n"
        "192.168.0.0/16,,64501\n"
        "2001:db8::/32,JP,64502\n"
        "2001:db8:1::/48,NO\n",
    )
    rows = build(source, tmp_path / "custom.mmdb")
    assert len(rows) == 5
    country = open_database(tmp_path / "custom.mmdb", "country")
    asn = open_database(tmp_path / "custom.mmdb", "asn")
    assert country.database_type == "Warren-Country-ASN (compat=GeoLite2-Country, GeoLite2-ASN)"
    expected = {
        "10.2.3.4": ("DE", 64500),
        "10.1.2.3": (
            "FR",
            None,
        ),  # the narrower row wins though it comes first; it is the whole answer
        "192.168.7.7": (None, 64501),
        "2001:db8::1": ("JP", 64502),
        "2001:db8:1::1": ("NO", None),
        "8.8.8.8": (None, None),
        "172.16.0.1": (None, None),
    }
    for address, (want_country, want_asn) in expected.items():
        ip = ip_address(address)
        found = asn.asn(ip)
        assert (country.country(ip), found[0] if found else None) == (want_country, want_asn), (
            address
        )


def test_the_type_names_only_the_kinds_the_rows_fill(tmp_path: Path) -> None:
    assert database_type(read_rows(write(tmp_path, "10.0.0.0/8,DE\n"))) == (
        "Warren-Country (compat=GeoLite2-Country)"
    )
    only_asn = write(tmp_path, "10.0.0.0/8,,AS1\n")
    assert database_type(read_rows(only_asn)) == "Warren-ASN (compat=GeoLite2-ASN)"
    build(only_asn, tmp_path / "asn.mmdb")
    assert open_database(tmp_path / "asn.mmdb", "asn").asn(ip_address("10.0.0.1")) == (1, None)


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "10.0.0.1/8,DE\n"
        "not-a-network,DE\n"
        "10.0.0.0/16,GER\n"
        "10.1.0.0/16,DE,ASX\n"
        "10.2.0.0/16\n"
        "10.3.0.0/16,DE,1,extra\n"
        "10.4.0.0/16,DE\n"
        "10.4.0.0/16,FR\n",
    )
    output = tmp_path / "custom.mmdb"
    output.write_bytes(b"the old file")
    with pytest.raises(BuildError) as refused:
        build(source, output)
    assert refused.value.problems == [
        "1: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
        "2: 'not-a-network' is not a network like 10.0.0.0/8",
        "3: 'GER' is not a two-letter ISO 3166 country code",
        "4: 'ASX' is not an AS number like 64512 or AS64512",
        "5: a row needs a country, an AS number, or both",
        "6: 4 columns; expected CIDR,country[,asn]",
        "8: 10.4.0.0/16 is already on line 7",
    ]
    assert output.read_bytes() == b"the old file"


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as refused:
        read_rows(write(tmp_path, "# nothing yet\n"))
    assert "no rows" in str(refused.value)
