"""The agent's interface names: the first node's is --interface itself, the others numbered
from it within 15 characters, and the same again after a restart."""

from pathlib import Path

from sidecar.interfaces import IFNAMSIZ, InterfaceNames, numbered


def test_the_first_node_gets_the_base_name_and_the_others_numbered_ones(tmp_path: Path) -> None:
    names = InterfaceNames(tmp_path / "home.interfaces.json", "wrn-home")
    assert names.name_for("a") == "wrn-home"
    assert names.name_for("b") == "wrn-home-1"
    assert names.name_for("a") == "wrn-home"
    again = InterfaceNames(tmp_path / "home.interfaces.json", "wrn-home")  # a restart
    assert again.name_for("b") == "wrn-home-1"
    assert again.name_for("c") == "wrn-home-2"


def test_a_forgotten_node_frees_its_name(tmp_path: Path) -> None:
    names = InterfaceNames(tmp_path / "n.json", "wrn-home")
    names.name_for("a")
    names.name_for("b")
    names.forget("b")
    assert names.name_for("c") == "wrn-home-1"


def test_long_names_are_cut_to_fit_and_stay_distinct(tmp_path: Path) -> None:
    base = "wrn-a-long-site"  # 15 already
    names = InterfaceNames(tmp_path / "n.json", base)
    made = [names.name_for(str(n)) for n in range(12)]
    assert made[0] == base
    assert all(len(name) <= IFNAMSIZ for name in made)
    assert len(set(made)) == len(made)
    assert numbered(base, 11) == "wrn-a-long-s-11"


def test_an_unreadable_file_only_costs_the_names(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text("{not json")
    assert InterfaceNames(path, "wrn-home").name_for("a") == "wrn-home"
