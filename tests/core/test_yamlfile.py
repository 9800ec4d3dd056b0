"""Reading the YAML admins write: text that is not UTF-8, empty files, duplicate keys at the line
of their second use, and problems found after parsing placed at their key's line."""

from pathlib import Path

import pytest

from core.problems import ConfigError, Problem
from core.yamlfile import load_yaml, locate, parse_yaml


def test_a_file_that_is_not_utf8_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_yaml(path)


def test_an_empty_file_is_nothing_not_an_error() -> None:
    assert parse_yaml("") is None
    assert parse_yaml("  \n\n") is None


def test_a_duplicate_key_is_placed_at_its_second_use() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_yaml("a: 1\nb:\n  c: 2\na: 3\n", Path("x.yaml"))
    (problem,) = raised.value.problems
    assert problem.line == 4
    assert "duplicate" in problem.message


def test_problems_found_later_point_at_their_keys_line_or_the_closest_one_there() -> None:
    text = "resources:\n  app:\n    targets:\n      - {host: a, port: 1}\n      - {host: b}\n"
    found = locate(
        text,
        [
            Problem(("resources", "app", "targets", 1, "port"), "missing"),
            Problem(("resources", "gone"), "unknown"),
        ],
        Path("p.yaml"),
    )
    assert [(p.line, p.file) for p in found] == [(5, Path("p.yaml")), (2, Path("p.yaml"))]
