"""The certificates over time (core.acme.manager), without a CA that answers: what is not due
is left alone, and a failure is tried again each time more patiently, said in one line."""

import asyncio
import logging
from pathlib import Path

import pytest

from core.acme.manager import AcmeCertificates
from core.acme.plan import Wanted
from core.acme.shared import NodeOnly
from core.auth.signinstate import SqliteKV
from core.settings import Settings, load_settings
from demo import processes
from tests.support.tls import LocalCa


def node(tmp_path: Path, more: str = "") -> Settings:
    closed = processes.free_port()  # no CA answers there
    (tmp_path / "warren.yaml").write_text(
        f"state_dir: state\nacme:\n  directory: https://127.0.0.1:{closed}/dir\n{more}"
    )
    return load_settings(tmp_path / "warren.yaml")


def certificates(settings: Settings, *hosts: str) -> AcmeCertificates:
    kv = SqliteKV(settings.state_dir / "signin.sqlite3")
    return AcmeCertificates(settings, lambda: hosts, kv, NodeOnly())


def test_a_failure_is_retried_each_time_more_patiently_and_said_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = certificates(node(tmp_path, "  retry_after: 100ms\n"), "app.warren.test")

    async def two_passes() -> None:
        wait = await manager.check()
        await asyncio.sleep(wait)
        await manager.check()

    with caplog.at_level(logging.ERROR, logger="warren.acme"):
        asyncio.run(two_passes())
    lines = [r.getMessage() for r in caplog.records if "not obtained" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("acme: app.warren.test (http-01) not obtained: account at https://")
    assert lines[0].endswith("no certificate to serve for it yet; next try in 100ms")
    assert lines[1].endswith("next try in 200ms")  # doubled
    (status,) = manager.status()
    assert status["last_error"] is not None
    assert status["last_error"].startswith("account at https://127.0.0.1:")
    assert status["expires"] is None
    assert list((tmp_path / "state" / "acme" / "certificates").glob("*.pem")) == []


def test_a_certificate_that_is_not_due_is_left_alone(tmp_path: Path) -> None:
    settings = node(tmp_path)
    manager = certificates(settings, "app.warren.test")
    issued = manager.local.certificates / "app.warren.test.pem"
    issued.parent.mkdir(parents=True)
    LocalCa.fresh().issue(["app.warren.test"], issued, days=90)
    wait = asyncio.run(manager.check())
    assert 0 < wait <= 3600  # the next look: acme.check_interval, long before it is due
    (status,) = manager.status()
    assert status["last_error"] is None  # no order was tried: the CA would have failed it
    assert status["expires"] is not None
    assert status["renews"] is not None
    assert status["renews"] < status["expires"]


def test_the_plan_follows_the_hosts_it_is_given(tmp_path: Path) -> None:
    hosts = ["a.warren.test"]
    settings = node(tmp_path, "  retry_after: 1h\n")
    manager = AcmeCertificates(
        settings, lambda: hosts, SqliteKV(tmp_path / "kv.sqlite3"), NodeOnly()
    )
    asyncio.run(manager.check())
    hosts.append("b.warren.test")
    asyncio.run(manager.check())
    assert [s["names"] for s in manager.status()] == [["a.warren.test"], ["b.warren.test"]]
    hosts.remove("a.warren.test")
    asyncio.run(manager.check())
    assert [s["names"] for s in manager.status()] == [["b.warren.test"]]
    assert Wanted(("b.warren.test",), "http-01").file_name == "b.warren.test.pem"
