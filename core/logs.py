"""One logging set-up for every Warren process: JSON lines, or a plain human format on a terminal.

The standard library's `logging`, with a JSON formatter of our own, rather than structlog:
mitmproxy, aiohttp, pyroute2 and every Warren module already log through stdlib loggers, so one
formatter on the root logger puts all of them in the same format, with nothing to adapt.

A JSON line holds `time` (ISO 8601 with date, milliseconds and zone offset), `level`,
`component`, `logger` and `message`; an event (`event(...)`) adds `event` and its fields as keys
of their own; an exception comes as the text field `error`. The human format is
`2026-12-02 18:36:21.123 INFO gateway message k=v`.

Under `mitmdump -s addons/warren.py` mitmproxy owns logging: nothing here is called there.
"""

import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from core.settings import Settings, load_settings

type Format = Literal["auto", "json", "human"]

_EVENT = "warren_event"  # the LogRecord attributes an event's name and fields travel in
_FIELDS = "warren_fields"
# Quiet unless asked for: per-frame or per-connection chatter that drowns the decisions.
_NOISY = ("asyncio", "hpack", "h2", "aiohttp.access", "pyroute2")
_CONNECTIONS = "mitmproxy.proxy.server"  # a line per connection: only with --verbose


def local_time(created: float) -> datetime:
    return datetime.fromtimestamp(created).astimezone()


_second: tuple[int, str, str] = (-1, "", "")  # the last second formatted: date-time, zone


def iso_time(created: float) -> str:
    """ISO 8601 with the date, milliseconds and the zone offset: `2026-12-02T18:36:21.123+00:00`.
    The access log asks for one per request: the second's text is made once per second (one
    tuple, read and replaced whole, so a thread that logs meanwhile never mixes two)."""
    global _second
    second = int(created)
    cached = _second
    if cached[0] != second:
        text = local_time(second).isoformat(timespec="seconds")
        cached = _second = (second, text[:19], text[19:])
    return f"{cached[1]}.{int((created - second) * 1000):03d}{cached[2]}"


def human_time(created: float) -> str:
    return local_time(created).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def event(
    logger: logging.Logger, name: str, /, *, level: int = logging.INFO, **fields: object
) -> None:
    """A record (INFO unless `level` says otherwise) for something an operator watches for (a
    sign-in, a reload): `event=name` and each field become keys of the JSON line. Never pass a
    secret as a field."""
    logger.log(level, name, extra={_EVENT: name, _FIELDS: fields})


def _fields_of(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    name = getattr(record, _EVENT, None)
    if name is not None:
        fields["event"] = name
        fields.update(getattr(record, _FIELDS, None) or {})
    client = getattr(record, "client", None)  # mitmproxy's connection records carry the peer
    if isinstance(client, tuple) and len(client) >= 2 and "client" not in fields:
        fields["client"] = f"{client[0]}:{client[1]}"
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a field that is not JSON becomes its text."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields_of(record).items():
            line.setdefault(key, value)  # a field never hides one of the five above
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """`2026-12-02 18:36:21.123 INFO gateway message k=v`, for someone reading a terminal."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields_of(record)
        fields.pop("event", None)  # the message is the event's name already
        text = " ".join(
            (
                human_time(record.created),
                record.levelname,
                self.component,
                record.getMessage(),
                *(f"{key}={_human_value(value)}" for key, value in fields.items()),
            )
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _human_value(value: object) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if not text or " " in text or '"' in text else text


def is_terminal(stream: TextIO) -> bool:
    isatty: Callable[[], bool] | None = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def wants_human(format: Format, stream: TextIO) -> bool:
    """`human`, or `auto` on a terminal; JSON for journald, Docker and files."""
    return format == "human" or (format == "auto" and is_terminal(stream))


def formatter(component: str, format: Format, stream: TextIO) -> logging.Formatter:
    if wants_human(format, stream):
        return HumanFormatter(component)
    return JsonFormatter(component)


class WarrenHandler(logging.StreamHandler[TextIO]):
    """The handler setup_logging installs, told apart from anyone else's."""


def setup_logging(component: str, format: Format = "auto", verbose: bool = False) -> None:
    """Every record of the process to stderr in one format; called once by `warren gateway`,
    `warren portal`, `warren sidecar` and `warren site`, and again (replacing its handler) once
    the settings have named the format."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, WarrenHandler)]:
        root.removeHandler(handler)  # ours, to be replaced; never another's
    handler = WarrenHandler(sys.stderr)
    handler.setFormatter(formatter(component, format, sys.stderr))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger(_CONNECTIONS).setLevel(logging.NOTSET if verbose else logging.WARNING)


def setup_from_config(component: str, config: Path, verbose: bool = False) -> Settings:
    """Load warren.yaml and log in its `logging.format`. Settings that fail to load leave
    logging set up as `auto`, so the error that follows still reaches the log."""
    setup_logging(component, "auto", verbose)
    settings = load_settings(config)
    setup_logging(component, settings.logging.format, verbose)
    return settings
