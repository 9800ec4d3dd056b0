"""The field types both YAML files share: durations and sizes as admins write them."""

from datetime import timedelta

import pytest

from core.fields import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("12h", 43200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (" 5M ", 300),
        (30, 30),
        (0.2, 0.2),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "m", "5m garbage", "-5s", True, None])
def test_what_is_not_a_duration_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(604800, "7d"), (7200, "2h"), (90, "90s"), (5400, "90m"), (0.25, "250ms")]
)
def test_durations_are_written_back_in_their_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (65536, 65536),
        ("65536", 65536),
        ("64KiB", 65536),
        ("64k", 65536),
        ("1MiB", 1 << 20),
        ("1m", 1 << 20),
        ("64KB", 64000),
        ("1MB", 1000000),
        ("10 b", 10),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1GiB", "1.5MiB", "lots", None, -1.0])
def test_what_is_not_a_size_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)
