"""core.logs: the one log format of every Warren process. The formatters on records; the set-up
in child processes, writing to a pipe (JSON) and to a pseudo-terminal (the human format)."""

import asyncio
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from core import control
from core.logs import (
    HumanFormatter,
    JsonFormatter,
    WarrenHandler,
    event,
    setup_from_config,
    setup_logging,
)
from core.policy.check import Capabilities
from core.policy.store import PolicyStore
from core.problems import ConfigError
from core.reloading import Reloading


def record_of(emit: Callable[[logging.Logger], None]) -> logging.LogRecord:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("warren.test.logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    keep = Keep()
    logger.addHandler(keep)
    try:
        emit(logger)
    finally:
        logger.removeHandler(keep)
    (found,) = records
    return found


def test_a_json_line_has_time_with_date_and_zone_level_component_logger_and_message() -> None:
    record = record_of(lambda log: log.warning("policy %s refused", "abc"))
    line = json.loads(JsonFormatter("portal").format(record))
    assert list(line) == ["time", "level", "component", "logger", "message"]
    when = datetime.fromisoformat(line["time"])
    assert when.tzinfo is not None
    assert line["time"][10] == "T"
    assert len(line["time"].partition(".")[2].partition("+")[0].partition("-")[0]) == 3  # ms
    assert line["level"] == "WARNING"
    assert line["component"] == "portal"
    assert line["logger"] == "warren.test.logs"
    assert line["message"] == "policy abc refused"


def test_an_events_fields_become_keys_of_the_line() -> None:
    record = record_of(
        lambda log: event(log, "sign-in", user="alice", outcome="succeeded", client="192.0.2.1")
    )
    line = json.loads(JsonFormatter("portal").format(record))
    assert line["event"] == "sign-in"
    assert line["message"] == "sign-in"
    assert line["level"] == "INFO"
    assert (line["user"], line["outcome"], line["client"]) == ("alice", "succeeded", "192.0.2.1")


def test_an_event_can_be_a_warning_and_never_hides_the_lines_own_keys() -> None:
    record = record_of(
        lambda log: event(log, "site-offline", site="home", message="x", level=logging.WARNING)
    )
    line = json.loads(JsonFormatter("sidecar").format(record))
    assert line["level"] == "WARNING"
    assert line["message"] == "site-offline"
    assert line["site"] == "home"


def test_an_exception_is_the_text_field_error() -> None:
    def failing(log: logging.Logger) -> None:
        try:
            raise ValueError("the storage is down")
        except ValueError:
            log.exception("reloading failed")

    line = json.loads(JsonFormatter("gateway").format(record_of(failing)))
    assert line["message"] == "reloading failed"
    assert "Traceback" in line["error"]
    assert "ValueError: the storage is down" in line["error"]


def test_mitmproxys_client_extra_is_a_field() -> None:
    record = record_of(lambda log: log.info("client connect", extra={"client": ("::1", 5000)}))
    assert json.loads(JsonFormatter("gateway").format(record))["client"] == "::1:5000"


def test_the_human_format_is_date_time_level_component_message_and_fields() -> None:
    record = record_of(lambda log: event(log, "sign-in", user="alice", outcome="locked out"))
    text = HumanFormatter("portal").format(record)
    stamp, _, rest = text.partition(" INFO ")
    datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    assert rest == 'portal sign-in user=alice outcome="locked out"'


CHILD = """
import logging, sys
from core.logs import event, setup_logging
setup_logging(sys.argv[1], sys.argv[2], verbose=False)
event(logging.getLogger("warren.child"), "reload", trigger="signal")
logging.getLogger("asyncio").info("noise")
logging.getLogger("mitmproxy.proxy.server").info("client connect")
"""


def child(component: str, format: str, *, terminal: bool) -> str:
    command = [sys.executable, "-c", CHILD, component, format]
    if not terminal:
        done = subprocess.run(command, capture_output=True, check=True, timeout=60)
        return done.stderr.decode()
    main, secondary = pty.openpty()
    with subprocess.Popen(command, stderr=secondary, stdout=subprocess.DEVNULL) as process:
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        process.wait(timeout=60)
    os.close(main)
    return output.decode()


def test_auto_is_json_to_a_pipe_without_the_noisy_loggers() -> None:
    (line,) = child("sidecar", "auto", terminal=False).splitlines()
    found = json.loads(line)
    assert found["component"] == "sidecar"
    assert found["event"] == "reload"
    assert found["trigger"] == "signal"


def test_auto_is_the_human_format_on_a_terminal() -> None:
    (line,) = child("site", "auto", terminal=True).splitlines()
    assert line.endswith(" INFO site reload trigger=signal")


def test_json_stays_json_on_a_terminal_and_human_stays_human_in_a_pipe() -> None:
    (line,) = child("site", "json", terminal=True).splitlines()
    assert json.loads(line)["component"] == "site"
    (text,) = child("gateway", "human", terminal=False).splitlines()
    assert text.endswith(" INFO gateway reload trigger=signal")


def test_set_up_again_replaces_its_own_handler_and_keeps_anothers() -> None:
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    level = root.level
    try:
        setup_logging("gateway", "json")
        setup_logging("gateway", "human", verbose=True)
        ours = [h for h in root.handlers if isinstance(h, WarrenHandler)]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, HumanFormatter)
        assert other in root.handlers
        assert root.level == logging.DEBUG
    finally:
        for handler in [h for h in root.handlers if isinstance(h, WarrenHandler)]:
            root.removeHandler(handler)
        root.removeHandler(other)
        root.setLevel(level)


def test_settings_that_do_not_load_leave_auto_set_up_for_the_error(tmp_path: Path) -> None:
    config = tmp_path / "warren.yaml"
    config.write_text("logging: {format: loud}\n")
    root = logging.getLogger()
    level = root.level
    try:
        with pytest.raises(ConfigError):
            setup_from_config("portal", config)
        ours = [h for h in root.handlers if isinstance(h, WarrenHandler)]
        assert len(ours) == 1  # auto: JSON here, since pytest's stderr is no terminal
        config.write_text("logging: {format: human}\nstate_dir: state\n")
        settings = setup_from_config("portal", config)
        assert settings.logging.format == "human"
        (handler,) = [h for h in root.handlers if isinstance(h, WarrenHandler)]
        assert isinstance(handler.formatter, HumanFormatter)
    finally:
        for handler in [h for h in root.handlers if isinstance(h, WarrenHandler)]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_reloads_and_failed_reloads_are_events_with_their_trigger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nresources: {}\n")
    store = PolicyStore(policy, Capabilities())
    socket = tmp_path / "control.sock"

    async def reloads() -> None:
        reloading = await Reloading.start(
            files=[], interval=60, reload=store.reload_async, control_path=socket
        )
        try:
            await asyncio.to_thread(control.call, socket, "reload", 10.0)
            policy.write_text("version: 1\nresources: {app: {host: [}\n")
            await asyncio.to_thread(control.call, socket, "reload", 10.0)
        finally:
            reloading.close()

    with caplog.at_level(logging.INFO, logger="warren.reloading"):
        asyncio.run(reloads())
    formatter = JsonFormatter("sidecar")
    lines = [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "warren.reloading"
    ]
    loaded, failed = (line for line in lines if "event" in line)
    assert loaded["event"] == "reload"
    assert loaded["trigger"] == "control"
    assert loaded["digest"] == store.current.digest
    assert failed["event"] == "reload-failed"
    assert failed["level"] == "ERROR"
    assert failed["trigger"] == "control"
    assert failed["digest"] == store.current.digest  # still the one that loaded
    assert "policy.yaml" in failed["error"]
