"""UN M.49 regions (continents, sub-regions and the M.49 groupings), for `region` rules.

M.49 is the UN Statistics Division's standard of area codes: `150` Europe, `154` Northern
Europe, `019` the Americas, `001` the World. Rules name regions by these codes and are decided
on the country the databases place an address in, as `country` rules are. The table is the
Unicode CLDR's territory containment (cldr-core 48.2.0, supplemental/territoryContainment.json;
Unicode License v3), which follows M.49: each region lists the regions and ISO 3166 countries it
directly contains. CLDR's own groupings that are not M.49 areas (EU, EZ, UN, and QO "Outlying
Oceania", which would put Antarctica in Oceania where M.49 puts it in no region) are left out.
tests/core/test_regions.py checks this table against that file.
"""

from collections.abc import Iterable
from functools import cache

CONTAINS: dict[str, tuple[str, ...]] = {
    "001": ("019", "002", "150", "142", "009"),
    "002": ("015", "011", "017", "014", "018"),
    "003": ("021", "013", "029"),
    "005": ("AR", "BO", "BR", "BV", "CL", "CO", "EC", "FK", "GF", "GS", "GY", "PE", "PY", "SR",
            "UY", "VE"),
    "009": ("053", "054", "057", "061"),
    "011": ("BF", "BJ", "CI", "CV", "GH", "GM", "GN", "GW", "LR", "ML", "MR", "NE", "NG", "SH",
            "SL", "SN", "TG"),
    "013": ("BZ", "CR", "GT", "HN", "MX", "NI", "PA", "SV"),
    "014": ("BI", "DJ", "ER", "ET", "IO", "KE", "KM", "MG", "MU", "MW", "MZ", "RE", "RW", "SC",
            "SO", "SS", "TF", "TZ", "UG", "YT", "ZM", "ZW"),
    "015": ("DZ", "EG", "EH", "LY", "MA", "SD", "TN", "EA", "IC"),
    "017": ("AO", "CD", "CF", "CG", "CM", "GA", "GQ", "ST", "TD"),
    "018": ("BW", "LS", "NA", "SZ", "ZA"),
    "019": ("021", "013", "029", "005"),
    "021": ("BM", "CA", "GL", "PM", "US"),
    "029": ("AG", "AI", "AW", "BB", "BL", "BQ", "BS", "CU", "CW", "DM", "DO", "GD", "GP", "HT",
            "JM", "KN", "KY", "LC", "MF", "MQ", "MS", "PR", "SX", "TC", "TT", "VC", "VG", "VI"),
    "030": ("CN", "HK", "JP", "KP", "KR", "MN", "MO", "TW"),
    "034": ("AF", "BD", "BT", "IN", "IR", "LK", "MV", "NP", "PK"),
    "035": ("BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "TL", "VN"),
    "039": ("AD", "AL", "BA", "ES", "GI", "GR", "HR", "IT", "ME", "MK", "MT", "RS", "PT", "SI",
            "SM", "VA", "XK"),
    "053": ("AU", "CC", "CX", "HM", "NF", "NZ"),
    "054": ("FJ", "NC", "PG", "SB", "VU"),
    "057": ("FM", "GU", "KI", "MH", "MP", "NR", "PW", "UM"),
    "061": ("AS", "CK", "NU", "PF", "PN", "TK", "TO", "TV", "WF", "WS"),
    "142": ("145", "143", "030", "034", "035"),
    "143": ("TM", "TJ", "KG", "KZ", "UZ"),
    "145": ("AE", "AM", "AZ", "BH", "CY", "GE", "IL", "IQ", "JO", "KW", "LB", "OM", "PS", "QA",
            "SA", "SY", "TR", "YE"),
    "150": ("154", "155", "151", "039"),
    "151": ("BG", "BY", "CZ", "HU", "MD", "PL", "RO", "RU", "SK", "UA"),
    "154": ("GG", "IM", "JE", "AX", "DK", "EE", "FI", "FO", "GB", "IE", "IS", "LT", "LV", "NO",
            "SE", "SJ", "CQ"),
    "155": ("AT", "BE", "CH", "DE", "FR", "LI", "LU", "MC", "NL"),
    "202": ("011", "017", "014", "018"),
    "419": ("013", "029", "005"),
}  # fmt: skip

# The M.49 names in English, for messages and `warren explain`.
NAMES: dict[str, str] = {
    "001": "World",
    "002": "Africa",
    "003": "North America",
    "005": "South America",
    "009": "Oceania",
    "011": "Western Africa",
    "013": "Central America",
    "014": "Eastern Africa",
    "015": "Northern Africa",
    "017": "Middle Africa",
    "018": "Southern Africa",
    "019": "Americas",
    "021": "Northern America",
    "029": "Caribbean",
    "030": "Eastern Asia",
    "034": "Southern Asia",
    "035": "South-eastern Asia",
    "039": "Southern Europe",
    "053": "Australia and New Zealand",
    "054": "Melanesia",
    "057": "Micronesia",
    "061": "Polynesia",
    "142": "Asia",
    "143": "Central Asia",
    "145": "Western Asia",
    "150": "Europe",
    "151": "Eastern Europe",
    "154": "Northern Europe",
    "155": "Western Europe",
    "202": "Sub-Saharan Africa",
    "419": "Latin America and the Caribbean",
}


@cache
def countries(region: str) -> frozenset[str]:
    """Every country the region holds, through its sub-regions. KeyError for an unknown code."""
    found: set[str] = set()
    for member in CONTAINS[region]:
        found |= countries(member) if member in CONTAINS else {member}
    return frozenset(found)


def regions_of(country: str) -> tuple[str, ...]:
    """The regions that hold the country, smallest first: SE is in 154, 150 and 001."""
    holding = [code for code in CONTAINS if country in countries(code)]
    return tuple(sorted(holding, key=lambda code: (len(countries(code)), code)))


def countries_in(regions: Iterable[str]) -> frozenset[str]:
    return frozenset().union(*(countries(region) for region in regions))


def parse_region(value: object) -> str:
    """A region code as rules write it: `150`, `"021"` or `21` (YAML reads an unquoted 021 as
    the number 21) are all three digits once read."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or len(text) > 3:
        raise ValueError(f"{value!r} is not a UN M.49 region code like 150 (Europe)")
    code = text.zfill(3)
    if code not in CONTAINS:
        known = ", ".join(f"{c} {n}" for c, n in NAMES.items())
        raise ValueError(f"{code} is not a UN M.49 region Warren knows; the regions are: {known}")
    return code
