"""core.notify speaks sd_notify(3) to a real datagram socket, as systemd listens on one."""

import socket
import uuid

import pytest

from core.notify import notify_ready
from tests.support.notify import NotifySocket


def test_ready_goes_to_the_socket_systemd_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with NotifySocket() as systemd:
        monkeypatch.setenv("NOTIFY_SOCKET", str(systemd.path))
        notify_ready("listening on 127.0.0.1:8443")
        assert systemd.receive() == "READY=1\nSTATUS=listening on 127.0.0.1:8443"
        notify_ready()
        assert systemd.receive() == "READY=1"


def test_an_abstract_socket_is_named_with_a_leading_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"warren-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        systemd.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notify_ready()
        assert systemd.recv(4096) == b"READY=1"


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify_ready()  # no socket to reach, and no error


def test_a_socket_that_is_gone_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with NotifySocket() as systemd:
        gone = systemd.directory / "gone"
        monkeypatch.setenv("NOTIFY_SOCKET", str(gone))
        notify_ready()
    assert "could not tell systemd this service is ready" in caplog.text
