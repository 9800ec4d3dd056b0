"""`warren geodb build`: rows of `CIDR,country[,asn]` -> a MaxMind-format database.

For ranges the public databases do not place (your LAN, a VPN's pool) and for tests. Readers
take it as the kinds its rows fill: its type names `Country` when any row has a country and
`GeoLite2-ASN` when any has an AS number, the marks geoip2 checks before `country()` and
`asn()`, as DB-IP's files do with `(compat=GeoLite2-ASN)`.

Written with mmdb-writer (MIT, typed, pure Python over netaddr). A more specific network wins
over a broader one that contains it, whatever the order of the rows.
"""

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path

from core.files import replacing
from core.ipsets import IPNetwork


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    network: IPNetwork
    country: str | None
    asn: int | None


class BuildError(Exception):
    def __init__(self, source: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{source}:{problem}" for problem in problems))


def read_rows(source: Path) -> list[Row]:
    rows, problems, seen = [], [], dict[IPNetwork, int]()
    with open(source, newline="", encoding="utf-8") as handle:
        for line, cells in _records(csv.reader(handle)):
            try:
                row = _row(line, cells)
            except ValueError as error:
                problems.append(f"{line}: {error}")
                continue
            if row is None:
                continue
            if row.network in seen:
                problems.append(f"{line}: {row.network} is already on line {seen[row.network]}")
                continue
            seen[row.network] = line
            rows.append(row)
    if not rows and not problems:
        problems.append("1: no rows; expected CIDR,country[,asn] lines such as 10.0.0.0/8,DE")
    if problems:
        raise BuildError(source, problems)
    return rows


def _records(reader: Iterable[list[str]]) -> Iterator[tuple[int, list[str]]]:
    for line, cells in enumerate(reader, start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        yield line, cells


_HEADER = re.compile(r"^(network|cidr|prefix|range)$", re.IGNORECASE)


def _row(line: int, cells: list[str]) -> Row | None:
    if line == 1 and _HEADER.match(cells[0]):
        return None
    if len(cells) > 3:
        raise ValueError(f"{len(cells)} columns; expected CIDR,country[,asn]")
    cells += [""] * (3 - len(cells))
    network_text, country_text, asn_text = cells
    try:
        network = ip_network(network_text, strict=True)
    except ValueError as error:
        if "host bits set" in str(error):
            loose = ip_network(network_text, strict=False)
            raise ValueError(f"{network_text} has host bits set; did you mean {loose}?") from None
        raise ValueError(f"{network_text!r} is not a network like 10.0.0.0/8") from None
    country = country_text.upper() or None
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        raise ValueError(f"{country_text!r} is not a two-letter ISO 3166 country code")
    asn = _asn(asn_text) if asn_text else None
    if country is None and asn is None:
        raise ValueError("a row needs a country, an AS number, or both")
    return Row(line, network, country, asn)


def _asn(text: str) -> int:
    digits = text.upper().removeprefix("AS")
    if not digits.isdigit() or not 0 < int(digits) < 2**32:
        raise ValueError(f"{text!r} is not an AS number like 64512 or AS64512")
    return int(digits)


def database_type(rows: Iterable[Row]) -> str:
    listed = list(rows)
    has_country = any(row.country for row in listed)
    has_asn = any(row.asn for row in listed)
    if has_country and has_asn:
        return "Warren-Country-ASN (compat=GeoLite2-Country, GeoLite2-ASN)"
    if has_asn:
        return "Warren-ASN (compat=GeoLite2-ASN)"
    return "Warren-Country (compat=GeoLite2-Country)"


def _record(row: Row) -> dict[str, object]:
    record: dict[str, object] = {}
    if row.country is not None:
        record["country"] = {"iso_code": row.country}
    if row.asn is not None:
        record["autonomous_system_number"] = row.asn
    return record


def build(source: Path, output: Path) -> list[Row]:
    """Write `output` from the rows of `source`; all or nothing (the old file stays on error)."""
    from mmdb_writer import MMDBWriter

    # netaddr ships no type information; mmdb-writer takes its IPSet.
    from netaddr import IPNetwork as NetaddrNetwork
    from netaddr import IPSet

    rows = read_rows(source)
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,  # IPv4 rows go under ::/96, where readers look IPv4 addresses up
        database_type=database_type(rows),
        languages=["en"],
        description=f"Built by warren geodb build from {source.name}",
        int_type="u32",
    )
    # Broader networks first: a later, narrower one then splits them instead of being replaced.
    for row in sorted(
        rows, key=lambda r: r.network.prefixlen + (96 if r.network.version == 4 else 0)
    ):
        writer.insert_network(IPSet([NetaddrNetwork(str(row.network))]), _record(row))
    with replacing(output, mode=0o644) as staged:
        writer.to_db_file(str(staged))
    return rows
