"""core.accesslog: lines appended to a file and reopened after rotation, a full disk said once
and never raised, the human format, the last refusals, a query without its share token."""

import json
import logging
from pathlib import Path

import pytest

from core.accesslog import AccessWriter, RecentRefusals, human_line, loggable_query

RECORD = {
    "time": "2026-12-02T18:36:21.123+00:00",
    "component": "gateway",
    "event": "request",
    "client": "192.0.2.1",
    "host": "app.example",
    "method": "GET",
    "path": "/x",
    "rule": "resources.app.rules[1]",
    "decision": "deny",
    "status": 403,
    "reason": None,
    "reference": "abc123",
}


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_appended_to_a_file_made_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(json.dumps({"before": True}) + "\n")
    writer = AccessWriter(path, "auto")
    writer.write(RECORD)
    writer.write({**RECORD, "path": "/y"})
    writer.close()
    assert [line.get("path") for line in lines(path)] == [None, "/x", "/y"]
    fresh = tmp_path / "fresh.log"
    AccessWriter(fresh, "json").close()
    assert fresh.stat().st_mode & 0o777 == 0o640


def test_reopen_writes_to_a_new_file_once_the_old_was_moved(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = AccessWriter(path, "json")
    writer.write(RECORD)
    path.rename(tmp_path / "access.log.1")
    writer.write({**RECORD, "path": "/late"})  # before the signal: still the moved file
    writer.reopen()
    writer.write({**RECORD, "path": "/after"})
    writer.close()
    assert [line["path"] for line in lines(tmp_path / "access.log.1")] == ["/x", "/late"]
    assert [line["path"] for line in lines(path)] == ["/after"]


def test_reopen_that_cannot_make_the_file_keeps_the_old_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "access.log"
    writer = AccessWriter(path, "json")
    path.rename(tmp_path / "moved.log")
    directory.rmdir()
    with caplog.at_level(logging.WARNING, logger="warren.accesslog"):
        writer.reopen()
    writer.write(RECORD)
    writer.close()
    assert "cannot reopen" in caplog.text
    assert [line["path"] for line in lines(tmp_path / "moved.log")] == ["/x"]


def test_a_full_disk_is_said_once_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    writer = AccessWriter(Path("/dev/full"), "json")  # every write: ENOSPC
    with caplog.at_level(logging.WARNING, logger="warren.accesslog"):
        for _ in range(3):
            writer.write(RECORD)
    writer.close()
    warnings = [r for r in caplog.records if r.name == "warren.accesslog"]
    assert len(warnings) == 1
    assert "cannot be written" in warnings[0].getMessage()


def test_the_human_format_when_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = AccessWriter(path, "human")
    writer.write(RECORD)
    writer.close()
    assert path.read_text() == human_line(RECORD) + "\n"
    assert human_line(RECORD) == (
        "2026-12-02 18:36:21.123 INFO gateway GET app.example/x -> 403 deny "
        "client=192.0.2.1 rule=resources.app.rules[1] reference=abc123"
    )


def test_the_last_refusals_newest_first_and_bounded() -> None:
    recent = RecentRefusals(size=3)
    for n in range(5):
        recent.add({"n": n})
    assert recent.newest_first() == [{"n": 4}, {"n": 3}, {"n": 2}]


def test_a_logged_query_never_holds_a_share_token() -> None:
    assert loggable_query("a=1&b=2") == "a=1&b=2"
    assert loggable_query("a=1&warren_share=TOKEN&b=2") == "a=1&b=2"
    assert loggable_query("warren%5Fshare=TOKEN") == ""
    assert loggable_query("") == ""
