"""The access log (addons.accesslog) on real gateways: a JSON line per request with the fields
docs/logs.md names, the reference of a refusal's page, no secret of the request; `refused` and
`off`; a file reopened on SIGUSR1 after logrotate moved it; the last refusals over the control
socket."""

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions

from core import control
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.inprocess import flow, pack, respond, run
from tests.support.waiting import eventually

FIELDS = {
    "time",
    "component",
    "event",
    "node",
    "client",
    "client_from",
    "host",
    "method",
    "path",
    "resource",
    "rule",
    "decision",
    "status",
    "reason",
    "bytes",
    "upstream",
    "route",
    "upstream_ms",
    "duration_ms",
    "user",
    "reference",
}

SECRETS = ("cookie-secret-4711", "basic-secret-4712", "share-secret-4713", "query-secret-4714")


def policy(backend: Backend) -> str:
    return f"""\
version: 1
rules:
  - {{action: deny, method: [TRACE]}}
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: allow, path: "/open/*"}}
      - {{action: deny, path: "/closed/*"}}
  down:
    host: down.example
    auth: public
    targets: [{{host: 127.0.0.1, port: 9}}]
"""


def requests(text: str) -> list[dict[str, Any]]:
    """The access log's lines among whatever else the output holds."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "request":
                found.append(record)
    return found


def line_for(read: Callable[[], str], marker: str) -> dict[str, Any]:
    def written() -> dict[str, Any]:
        lines = [r for r in requests(read()) if marker in r["path"]]
        return lines[-1] if lines else {}

    record: dict[str, Any] = eventually(written)
    return record


NO_METRICS = "metrics: {gateway: off}\n"  # their port is another test's business


@pytest.fixture(scope="module")
def gateway(start_module_gateway: GatewayFactory, backend: Backend) -> Gateway:
    """The defaults: every request, to standard output, without query strings."""
    return start_module_gateway(policy(backend), name="all", settings=NO_METRICS)


@pytest.fixture(scope="module")
def refused(start_module_gateway: GatewayFactory, backend: Backend) -> Gateway:
    settings = "logging: {access: refused, access_file: access.log, access_query: true}\n"
    return start_module_gateway(policy(backend), name="refused", settings=NO_METRICS + settings)


def test_an_allowed_request_is_one_json_line_with_every_field(
    gateway: Gateway, backend: Backend
) -> None:
    answer = gateway.get("app.example", "/open/allowed-1?q=query-secret-4714")
    assert answer.status_code == 200
    record = line_for(gateway.logs, "allowed-1")
    assert set(record) == FIELDS  # no `query` unless logging.access_query
    assert record["component"] == "gateway"
    assert record["event"] == "request"
    assert record["time"][10] == "T"
    assert record["time"][-6] in "+-"
    assert record["client"] == "127.0.0.1"
    assert record["client_from"] == "peer"
    assert record["host"] == "app.example"
    assert record["method"] == "GET"
    assert record["path"] == "/open/allowed-1"
    assert record["resource"] == "app"
    assert record["rule"] == "resources.app.rules[0]"
    assert record["decision"] == "allow"
    assert record["status"] == 200
    assert record["reason"] is None
    assert record["reference"] is None
    assert record["bytes"] == len(answer.content)
    assert record["upstream"] == f"http://127.0.0.1:{backend.port}"
    assert isinstance(record["upstream_ms"], float)
    assert record["upstream_ms"] >= 0
    assert isinstance(record["duration_ms"], float)
    assert record["user"] is None


def test_a_denied_request_names_its_rule_and_the_reference_of_its_page(
    gateway: Gateway, backend: Backend
) -> None:
    answer = gateway.get("app.example", "/closed/denied-1", headers={"accept": "application/json"})
    assert answer.status_code == 403
    record = line_for(gateway.logs, "denied-1")
    assert record["decision"] == "deny"
    assert record["rule"] == "resources.app.rules[1]"
    assert record["status"] == 403
    assert record["reason"]
    assert record["reference"] == answer.json()["reference"]
    assert record["upstream"] is None
    assert record["upstream_ms"] is None
    html = gateway.get("app.example", "/closed/denied-2")
    assert line_for(gateway.logs, "denied-2")["reference"] in html.text


def test_each_request_is_logged_once_even_those_answered_before_the_rules(
    gateway: Gateway, backend: Backend
) -> None:
    assert gateway.get("nobody.example", "/unknown-host-1").status_code == 404
    assert gateway.get("app.example", "/.warren/healthz").status_code == 200
    unknown = line_for(gateway.logs, "unknown-host-1")
    assert unknown["resource"] is None
    assert unknown["rule"] is None
    assert unknown["decision"] == "none"
    assert unknown["status"] == 404
    assert [r["status"] for r in requests(gateway.logs()) if "unknown-host-1" in r["path"]] == [404]
    assert line_for(gateway.logs, "/.warren/healthz")["status"] == 200


def test_a_target_that_cannot_be_reached_is_logged_with_why(gateway: Gateway) -> None:
    answer = gateway.get("down.example", "/unreachable-1")
    assert answer.status_code == 502
    record = line_for(gateway.logs, "unreachable-1")
    assert record["resource"] == "down"
    assert record["upstream"] == "http://127.0.0.1:9"
    assert record["upstream_ms"] is None
    assert "127.0.0.1" in record["reason"]  # mitmproxy's word for what failed
    # The 502 page is made by addons.layers after the error hook; the line is written after it,
    # with the page's status and the reference it shows.
    assert record["status"] == 502
    assert record["reference"] is not None
    assert record["reference"] in answer.text


def test_no_cookie_authorization_token_or_query_reaches_the_log(
    gateway: Gateway, backend: Backend
) -> None:
    headers = {
        "cookie": "session=cookie-secret-4711",
        "authorization": "Basic basic-secret-4712",
    }
    for path in ("/open/secret-1", "/closed/secret-2"):
        gateway.get(
            "app.example",
            f"{path}?warren_share=share-secret-4713&q=query-secret-4714",
            headers=headers,
        )
        line_for(gateway.logs, path)
    log = gateway.logs()
    assert "cookie-secret-4711" not in log
    assert "basic-secret-4712" not in log
    lines = json.dumps([r for r in requests(log) if "secret-" in r["path"]])
    for secret in SECRETS:
        assert secret not in lines


def test_the_last_refusals_are_kept_for_the_control_socket_newest_first(
    gateway: Gateway, backend: Backend
) -> None:
    for marker in ("refused-a", "refused-b"):
        gateway.get("app.example", f"/closed/{marker}")
    gateway.get("app.example", "/open/not-refused")
    reply = control.call(gateway.directory / "state" / "gateway.sock", "refusals")
    assert reply["ok"] is True
    paths = [r["path"] for r in reply["refusals"]]
    assert paths[:2] == ["/closed/refused-b", "/closed/refused-a"]
    assert "/open/not-refused" not in paths
    assert reply["refusals"][0]["reference"]


def test_refused_only_logs_refusals_to_the_file_with_the_query_but_no_share_token(
    refused: Gateway,
) -> None:
    gateway = refused
    access = gateway.directory / "access.log"
    gateway.get("app.example", "/open/fine-1")
    gateway.get("app.example", "/closed/file-1?a=1&warren_share=share-secret-4713&b=2")
    record = line_for(access.read_text, "file-1")
    assert record["query"] == "a=1&b=2"
    assert [r for r in requests(access.read_text()) if "fine-1" in r["path"]] == []
    assert requests(gateway.logs()) == []  # to the file, not to stdout
    assert "share-secret-4713" not in access.read_text()
    assert oct(access.stat().st_mode & 0o777) == "0o640"


def test_sigusr1_reopens_the_file_after_logrotate_moved_it(
    refused: Gateway,
) -> None:
    gateway = refused
    access = gateway.directory / "access.log"
    gateway.get("app.example", "/closed/before-rotation")
    line_for(access.read_text, "before-rotation")
    rotated = gateway.directory / "access.log.1"
    access.rename(rotated)  # what logrotate does, before its postrotate `kill -USR1`
    os.kill(gateway.process.pid, signal.SIGUSR1)
    eventually(access.exists)
    gateway.get("app.example", "/closed/after-rotation")
    line_for(access.read_text, "after-rotation")
    assert "after-rotation" not in rotated.read_text()
    assert "before-rotation" not in access.read_text()


def test_under_mitmdump_the_access_log_is_written_too(
    start_module_gateway: GatewayFactory, backend: Backend
) -> None:
    settings = NO_METRICS + "logging: {access_file: access.log}\n"
    gateway = start_module_gateway(
        policy(backend), name="mitmdump", kind="mitmdump", settings=settings
    )
    gateway.get("app.example", "/open/under-mitmdump")
    gateway.get("app.example", "/closed/under-mitmdump")
    access = gateway.directory / "access.log"
    assert line_for(access.read_text, "/open/under-mitmdump")["status"] == 200
    assert line_for(access.read_text, "/closed/under-mitmdump")["status"] == 403


def test_off_writes_no_line(tmp_path: Path, capfd: Any) -> None:
    settings = "logging: {access: off}\n"
    with pack(tmp_path, settings=settings) as (context, _):
        respond(context, run(context, flow("app.example", "/admin/off-1")))
        respond(context, run(context, flow("app.example", "/fine/off-2")))
    assert "off-1" not in capfd.readouterr().out
    on = tmp_path / "on"
    on.mkdir()
    with pack(on) as (context, _):
        respond(context, run(context, flow("app.example", "/admin/on-1")))
    assert requests(capfd.readouterr().out)[-1]["path"] == "/admin/on-1"


def test_the_general_log_is_json_lines_too(gateway: Gateway, backend: Backend) -> None:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    started = [line for line in lines if line.get("logger") == "warren.config"]
    assert started
    assert started[0]["component"] == "gateway"
    assert started[0]["level"] == "INFO"
    assert all(line.startswith("{") for line in gateway.logs().splitlines() if line.strip())


def test_an_access_file_that_cannot_be_opened_refuses_the_config(tmp_path: Path) -> None:
    settings = f"logging: {{access_file: {tmp_path / 'missing' / 'access.log'}}}\n"
    with (
        pytest.raises(exceptions.OptionsError, match=r"logging\.access_file"),
        pack(tmp_path, settings=settings),
    ):
        pass
