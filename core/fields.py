"""Field types shared by warren.yaml and policy.yaml."""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `10m`, `12h`, `1h30m`, `7d`, or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is a number of seconds or text like 10s, 5m, 12h, 7d")
    text = value.strip().lower().replace(" ", "")
    position, seconds = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        seconds += float(match["number"]) * _UNIT_SECONDS[match["unit"]]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration like 10s, 5m, 12h or 7d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def one_or_many(value: Any) -> Any:
    """YAML convenience: `method: GET` means `method: [GET]`."""
    if isinstance(value, str | int):
        return [value]
    return value
