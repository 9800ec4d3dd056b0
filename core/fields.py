"""Field types shared by warren.yaml and policy.yaml (its rules and its rate limits alike)."""

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, PlainValidator

from core.paths import PathPattern, compile_pattern


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


_SIZE = re.compile(r"(?P<number>\d+)\s*(?P<unit>|b|kib|mib|kb|mb|k|m)", re.IGNORECASE)
_UNIT_BYTES = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1 << 20, "mib": 1 << 20}
_UNIT_BYTES["mb"] = 1000 * 1000


def parse_size(value: Any) -> int:
    """`65536`, `64KiB`, `1MiB` (also `64k`, `1m`; `KB`/`MB` are powers of ten)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size like 65536, 64KiB or 1MiB")
    return int(match["number"]) * _UNIT_BYTES[match["unit"].lower()]


Size = Annotated[int, BeforeValidator(parse_size)]


EMPTY_LIST = "an empty list matches nothing; leave the key out instead"


def non_empty[T](values: tuple[T, ...]) -> tuple[T, ...]:
    if not values:
        raise ValueError(EMPTY_LIST)
    return values


def _one_or_more(value: Any) -> Any:
    """`method: GET` means `method: [GET]`; `method: []` is refused. One call per field, before
    pydantic's own checks: a large policy has hundreds of thousands of such fields."""
    if isinstance(value, str | int):
        return [value]
    if isinstance(value, list | tuple) and not value:
        raise ValueError(EMPTY_LIST)
    return value


type ListOf[T] = Annotated[tuple[T, ...], BeforeValidator(_one_or_more)]

_METHOD = re.compile(r"^[A-Z]+$")


def _method(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an HTTP method")
    return _method_name(value)


@lru_cache(maxsize=256)  # a large policy names a handful of methods, 100 000 times over
def _method_name(value: str) -> str:
    name = value.strip().upper()
    if not _METHOD.match(name):
        raise ValueError(f"{value!r} is not an HTTP method")
    return name


Method = Annotated[str, BeforeValidator(_method)]


def _path_pattern(value: Any) -> PathPattern:
    if isinstance(value, PathPattern):
        return value
    if not isinstance(value, str):
        raise ValueError("a path pattern is text like /admin/*")
    return compile_pattern(value)


def _pattern_source(pattern: PathPattern) -> str:
    return pattern.source


# Kept compiled: validating a pattern is compiling it, and the rule engine needs it compiled.
type Pattern = Annotated[
    PathPattern, PlainValidator(_path_pattern), PlainSerializer(_pattern_source, return_type=str)
]
