"""authportal.app: a real `warren portal` process tells systemd it is ready once it listens."""

import socket
from pathlib import Path

from demo import processes
from tests.support.notify import NotifySocket


def test_the_portal_says_ready_once_it_listens(tmp_path: Path) -> None:
    port = processes.free_port()
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    (tmp_path / "warren.yaml").write_text(
        f"public_url: http://auth.test\nportal: {{listen: 127.0.0.1:{port}}}\nstate_dir: state\n"
    )
    log = tmp_path / "portal.log"
    with NotifySocket() as systemd:
        portal = processes.start(
            processes.warren("portal", "--config", str(tmp_path / "warren.yaml")),
            log=log,
            env=systemd.env,
        )
        try:
            assert systemd.receive() == f"READY=1\nSTATUS=listening on 127.0.0.1:{port}"
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # already listening
        finally:
            processes.stop(portal)
    assert portal.returncode == 0, log.read_text()
