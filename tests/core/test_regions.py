import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import regions
from core.policy.model import Rule
from tests.support.ci import in_ci

CLDR = Path(__file__).resolve().parent.parent / "support" / "cldr" / "node_modules" / "cldr-core"


def cldr_containment() -> dict[str, list[str]]:
    """Each of CLDR's entries as the list of codes it contains."""
    path = CLDR / "supplemental" / "territoryContainment.json"
    if not path.is_file():
        missing = "run `npm ci --prefix tests/support/cldr` (./dev test does)"
        if in_ci():
            raise RuntimeError(missing)
        pytest.skip(missing)
    data = json.loads(path.read_text())
    table = data["supplemental"]["territoryContainment"]
    return {code: [str(member) for member in entry["_contains"]] for code, entry in table.items()}


def test_the_table_is_cldrs_m49_areas_without_its_own_groupings() -> None:
    cldr = cldr_containment()
    expected = {
        code: tuple(
            member
            for member in contained
            if member.isdigit() or member not in cldr  # QO, EU, EZ, UN: CLDR's, not M.49's
        )
        for code, contained in cldr.items()
        if code.isdigit()  # "001-status-deprecated" lists codes no longer in use
    }
    assert expected == regions.CONTAINS
    assert set(regions.NAMES) == set(regions.CONTAINS)


def test_a_region_holds_its_sub_regions_countries() -> None:
    europe = regions.countries("150")
    assert {"DE", "FR", "GB", "SE", "IT", "PL", "UA"} <= europe
    assert regions.countries("154") < europe
    assert not europe & {"US", "TR", "JP", "XX"}
    assert regions.countries("003") == regions.countries_in(["021", "013", "029"])
    assert "US" in regions.countries("019")
    assert "BR" in regions.countries("419")
    assert "US" not in regions.countries("419")
    world = regions.countries("001")
    assert all(regions.countries(code) <= world for code in regions.CONTAINS)
    assert "AQ" not in world
    assert "XX" not in world


def test_the_regions_of_a_country_smallest_first() -> None:
    assert regions.regions_of("SE") == ("154", "150", "001")
    assert regions.regions_of("BR") == ("005", "419", "019", "001")
    assert regions.regions_of("XX") == ()
    assert regions.regions_of("AQ") == ()


@pytest.mark.parametrize(
    ("written", "code"), [(150, "150"), ("150", "150"), (21, "021"), ("021", "021"), (9, "009")]
)
def test_codes_are_read_as_three_digits(written: object, code: str) -> None:
    assert regions.parse_region(written) == code


@pytest.mark.parametrize("written", ["EU", "europe", 999, "1500", -150, True, 1.5, "15 0", ""])
def test_anything_else_is_refused_with_the_list(written: object) -> None:
    with pytest.raises(ValueError, match="region"):
        regions.parse_region(written)


def test_a_rule_refuses_an_unknown_region_and_says_which_there_are() -> None:
    with pytest.raises(ValidationError) as raised:
        Rule.parse({"action": "deny", "region": [150, 998]})
    assert "998 is not a UN M.49 region" in str(raised.value)
    assert "150 Europe" in str(raised.value)
    assert Rule.parse({"action": "deny", "region_not": "021"}).region_not == ("021",)
