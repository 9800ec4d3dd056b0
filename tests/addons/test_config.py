"""warren_config (addons.config): a file that does not validate stops start-up, in-process; hot
reload of policy.yaml in a real gateway: file watch, SIGHUP, `warren reload`; refusals."""

import json
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from demo import processes
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.waiting import eventually

SLOW_POLL = "reload_poll: 1h\n"  # so only the trigger under test can cause a reload


def policy(backend: Backend, denied: str) -> str:
    return f"""\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
    rules:
      - {{action: deny, path: "/{denied}/*"}}
"""


def status(gateway: Gateway, path: str) -> int:
    return gateway.get("app.example", path).status_code


def test_a_broken_config_stops_startup_with_the_reason(tmp_path: Path) -> None:
    from mitmproxy import exceptions

    from tests.support.inprocess import pack

    expected = pytest.raises(
        exceptions.OptionsError, match=r"policy.yaml:1: version: Input should be 1"
    )
    with expected, pack(tmp_path, policy="version: 2\n"):
        pass


def test_an_edited_file_takes_effect_without_a_restart(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "one"))
    assert status(gateway, "/one/x") == 403
    assert status(gateway, "/two/x") == 200
    gateway.policy.write_text(policy(backend, "two"))
    eventually(lambda: status(gateway, "/two/x") == 403)
    assert status(gateway, "/one/x") == 200


def test_sighup_reloads(backend: Backend, start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(policy(backend, "one"), settings=SLOW_POLL)
    gateway.policy.write_text(policy(backend, "two"))
    assert status(gateway, "/two/x") == 200  # nothing reloads by itself here
    gateway.process.send_signal(signal.SIGHUP)
    eventually(lambda: status(gateway, "/two/x") == 403)


def test_warren_reload_and_status(backend: Backend, start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(policy(backend, "one"), settings=SLOW_POLL)
    gateway.policy.write_text(policy(backend, "two"))
    reload = subprocess.run(
        processes.warren("reload", "--config", str(gateway.config)), capture_output=True, text=True
    )
    assert reload.returncode == 0, reload.stderr
    assert "running: 1 rules" in reload.stdout
    assert status(gateway, "/two/x") == 403

    gateway.policy.write_text(policy(backend, "three").replace("/three/*", "three"))
    refused = subprocess.run(
        processes.warren("reload", "--config", str(gateway.config)), capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "resources.app.rules[0].path[0]" in refused.stderr
    assert "a path pattern starts with /" in refused.stderr
    assert status(gateway, "/two/x") == 403  # the last good policy keeps running

    shown = subprocess.run(
        processes.warren("status", "--config", str(gateway.config)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "failed_reloads  1" in shown.stdout
    assert "reloads         1" in shown.stdout


def test_a_broken_edit_is_refused_logged_and_counted(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "one"))
    gateway.policy.write_text("version: 1\nresources:\n  app: {host: [}\n")
    eventually(lambda: "policy reload refused" in gateway.logs())
    assert "not valid YAML" in gateway.logs()
    assert status(gateway, "/one/x") == 403
    assert status(gateway, "/two/x") == 200
    from core import control
    from core.settings import load_settings

    reply = control.call(load_settings(gateway.config).control_path, "status")
    assert reply["failed_reloads"] == 1
    assert reply["last_error"].startswith(str(gateway.policy))


def test_no_request_fails_during_twenty_reloads_under_load(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend, "one"), settings=SLOW_POLL)
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with gateway.client() as client:
            while not stop.is_set():
                try:
                    code = client.get("/free/x", headers={"host": "app.example"}).status_code
                    outcomes[str(code)] += 1
                except httpx.HTTPError as error:
                    outcomes[type(error).__name__] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        settings = gateway.config
        for index in range(20):
            gateway.policy.write_text(policy(backend, f"denied{index}"))
            reply = subprocess.run(
                processes.warren("reload", "--config", str(settings)),
                capture_output=True,
                text=True,
            )
            assert reply.returncode == 0, reply.stderr
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert set(outcomes) == {"200"}, json.dumps(outcomes)
    assert outcomes["200"] > 20
