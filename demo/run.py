"""`warren demo`: a gateway on loopback in front of a demo application, with a sample policy."""

import signal
import tempfile
import time
from pathlib import Path
from types import FrameType

from demo import processes

POLICY = """\
version: 1
rules:
  - {{action: deny, path: "/.records"}}     # the backend's own bookkeeping stays private
resources:
  app:
    host: app.localhost
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend}}}]
    health: {{path: /.health, interval: 5s}}
    rules:
      - {{action: deny, path: "/admin/*", not_cidr: [10.0.0.0/8]}}
      - {{action: allow}}
  private:
    host: private.localhost
    targets: [{{host: 127.0.0.1, port: {backend}}}]
"""

SETTINGS = """\
listen: 127.0.0.1:{gateway}
policy_file: policy.yaml
state_dir: state
"""


def run(port: int = 8080) -> int:
    directory = Path(tempfile.mkdtemp(prefix="warren-demo-"))
    backend_port = processes.free_port()
    gateway_port = port if _free(port) else processes.free_port()
    (directory / "policy.yaml").write_text(POLICY.format(backend=backend_port))
    (directory / "warren.yaml").write_text(SETTINGS.format(gateway=gateway_port))
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` too, not only Ctrl-C
    backend = processes.start(processes.backend(backend_port), log=directory / "backend.log")
    gateway = processes.start(
        processes.warren("gateway", "--config", str(directory / "warren.yaml")),
        log=directory / "gateway.log",
    )
    try:
        processes.wait_for_port(backend_port, backend)
        processes.wait_for_port(gateway_port, gateway)
        print(_banner(directory, gateway_port), flush=True)
        while gateway.poll() is None and backend.poll() is None:
            time.sleep(0.5)
        print(f"a demo process stopped; logs are in {directory}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        processes.stop(gateway)
        processes.stop(backend)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _free(port: int) -> bool:
    try:
        processes.wait_for_port(port, timeout=0.2)
    except TimeoutError:
        return True
    return False


def _banner(directory: Path, port: int) -> str:
    base = f"http://app.localhost:{port}"
    return f"""
Warren demo: a gateway on 127.0.0.1:{port} in front of a demo application.
(*.localhost names resolve to loopback in browsers and in curl.)

  {base}/                      forwarded: the resource is public
  {base}/admin/                403: a deny rule for /admin/* outside 10.0.0.0/8
  {base}/a/%2e%2e/%2e%2e/etc   400: climbs above the root, refused rather than guessed
  http://private.localhost:{port}/   401: needs sign-in, and sign-in is not set up in this demo
  http://other.localhost:{port}/     404: no resource has this host

  curl -s {base}/ -H 'X-Forwarded-For: 6.6.6.6'    the application never sees the forged value

Policy: {directory}/policy.yaml (edit it: the gateway reloads it within a second;
        a broken edit is refused and the running policy stays).
Logs:   {directory}/gateway.log
Explain a decision:  warren explain {directory}/policy.yaml --host app.localhost --path /admin/x
Press Ctrl-C to stop.
"""
