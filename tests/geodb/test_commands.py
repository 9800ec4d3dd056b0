import json
from pathlib import Path

from typer.testing import CliRunner

from tests.support.geoip import ASN, CITY, COUNTRY, geodb_cli, geoip_file

runner = CliRunner()
app = geodb_cli()


def settings(directory: Path, geoip: str) -> Path:
    path = directory / "warren.yaml"
    path.write_text(f"geoip: {geoip}\n")
    return path


def test_lookup_says_what_and_which_database(tmp_path: Path) -> None:
    config = settings(tmp_path, f"{{country_db: {geoip_file(COUNTRY)}, asn_db: {geoip_file(ASN)}}}")
    result = runner.invoke(app, ["geodb", "lookup", "89.160.20.112", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "address   89.160.20.112"
    assert lines[1].startswith(f"country   SE from {COUNTRY} (GeoLite2-Country, built ")
    assert lines[2] == "region    154 Northern Europe, 150 Europe, 001 World"
    assert lines[3].startswith(f"asn       AS29518 Bredband2 AB from {ASN} (GeoLite2-ASN, built ")
    mapped = runner.invoke(
        app, ["geodb", "lookup", "::ffff:81.2.69.142", "-c", str(config), "--json"]
    )
    answer = json.loads(mapped.output)
    assert (answer["address"], answer["country"], answer["asn"]) == ("81.2.69.142", "GB", None)
    assert answer["country_database"] == str(geoip_file(COUNTRY))
    assert answer["regions"] == ["154", "150", "001"]


def test_lookup_of_a_private_address_explains_why_it_is_unknown(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["geodb", "lookup", "100.64.1.2", "--country-db", str(geoip_file(COUNTRY))]
    )
    assert result.exit_code == 0
    assert f"country   unknown (in none of: {COUNTRY})" in result.output
    assert "region" not in result.output  # an unknown country is in no region
    assert "asn       - (no ASN database)" in result.output
    assert (
        "note      a carrier-grade NAT address (RFC 6598): public databases hold none"
        in result.output
    )


def test_lookup_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    bad_ip = runner.invoke(
        app, ["geodb", "lookup", "999.1.1.1", "--country-db", str(geoip_file(COUNTRY))]
    )
    assert bad_ip.exit_code == 2
    assert "is not an IP address" in bad_ip.output
    city = runner.invoke(app, ["geodb", "lookup", "1.1.1.1", "--country-db", str(geoip_file(CITY))])
    assert city.exit_code == 1
    assert "is a GeoIP2-City database" in city.output
    none = runner.invoke(app, ["geodb", "lookup", "1.1.1.1", "-c", str(settings(tmp_path, "{}"))])
    assert none.exit_code == 1
    assert "no databases: set geoip.country_db" in none.output


def test_build_then_lookup(tmp_path: Path) -> None:
    (tmp_path / "ranges.csv").write_text("10.0.0.0/8,DE,AS64512\n")
    out = tmp_path / "custom.mmdb"
    result = runner.invoke(app, ["geodb", "build", str(tmp_path / "ranges.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}: 1 networks (1 with a country, 1 with an AS number)\n"
    both = ["--country-db", str(out), "--asn-db", str(out)]
    found = runner.invoke(app, ["geodb", "lookup", "10.1.2.3", *both])
    assert "country   DE from custom.mmdb (Warren-Country-ASN" in found.output
    assert "asn       AS64512 from custom.mmdb" in found.output
    assert "note" not in found.output  # answered: the private-range note would mislead


def test_build_reports_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "ranges.csv").write_text("10.0.0.0/8,DE\n10.0.0.0/33,FR\n")
    result = runner.invoke(
        app, ["geodb", "build", str(tmp_path / "ranges.csv"), "-o", str(tmp_path / "x.mmdb")]
    )
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'ranges.csv'}:2: '10.0.0.0/33' is not a network" in result.output
    assert not (tmp_path / "x.mmdb").exists()
