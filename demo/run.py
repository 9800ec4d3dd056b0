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
  ops:
    host: ops.localhost
    auth: {{groups: [ops], share_links: true}}
    targets: [{{host: 127.0.0.1, port: {backend}}}]
  family:
    host: family.localhost
    auth: {{pin_hash: "{pin_hash}"}}
    targets: [{{host: 127.0.0.1, port: {backend}}}]
  portal:                                   # the sign-in portal, reached through the gateway
    host: auth.localhost
    auth: public
    targets: [{{host: 127.0.0.1, port: {portal}}}]
"""

DEMO_USER, DEMO_GROUP, DEMO_PIN = "demo", "ops", "1234"

SETTINGS = """\
public_url: http://auth.localhost:{gateway}
listen: 127.0.0.1:{gateway}
policy_file: policy.yaml
users_file: users.yaml
state_dir: state
portal: {{listen: 127.0.0.1:{portal}}}
"""


def run(port: int = 8080) -> int:
    from core.auth.users import hash_secret

    directory = Path(tempfile.mkdtemp(prefix="warren-demo-"))
    backend_port, portal_port = processes.free_port(), processes.free_port()
    gateway_port = port if _free(port) else processes.free_port()
    (directory / "policy.yaml").write_text(
        POLICY.format(backend=backend_port, portal=portal_port, pin_hash=hash_secret(DEMO_PIN))
    )
    (directory / "warren.yaml").write_text(
        SETTINGS.format(gateway=gateway_port, portal=portal_port)
    )
    password = _demo_user(directory)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` too, not only Ctrl-C
    config = str(directory / "warren.yaml")
    backend = processes.start(processes.backend(backend_port), log=directory / "backend.log")
    gateway = processes.start(
        processes.warren("gateway", "--config", config), log=directory / "gateway.log"
    )
    portal = processes.start(
        processes.warren("portal", "--config", config), log=directory / "portal.log"
    )
    running = (gateway, portal, backend)
    try:
        processes.wait_for_port(backend_port, backend)
        processes.wait_for_port(gateway_port, gateway)
        processes.wait_for_port(portal_port, portal)
        print(_banner(directory, gateway_port, password), flush=True)
        while all(process.poll() is None for process in running):
            time.sleep(0.5)
        print(f"a demo process stopped; logs are in {directory}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in running:
            processes.stop(process)


def _demo_user(directory: Path) -> str:
    import secrets

    from core.auth.users import User, UsersFile, hash_secret, save_users

    password = f"demo-{secrets.token_hex(4)}"
    user = User(password=hash_secret(password), email="demo@example.com", groups=(DEMO_GROUP,))
    save_users(directory / "users.yaml", UsersFile(users={DEMO_USER: user}))
    return password


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _free(port: int) -> bool:
    try:
        processes.wait_for_port(port, timeout=0.2)
    except TimeoutError:
        return True
    return False


def _banner(directory: Path, port: int, password: str) -> str:
    base = f"http://app.localhost:{port}"
    return f"""
Warren demo: a gateway on 127.0.0.1:{port} in front of a demo application.
(*.localhost names resolve to loopback in browsers and in curl.)

  {base}/                      forwarded: the resource is public
  {base}/admin/                403: a deny rule for /admin/* outside 10.0.0.0/8
  {base}/a/%2e%2e/%2e%2e/etc   400: climbs above the root, refused rather than guessed
  http://other.localhost:{port}/     404: no resource has this host

Sign-in (a browser: the portal is http://auth.localhost:{port}/):
  http://private.localhost:{port}/   any signed-in user; sends you to the portal first
  http://ops.localhost:{port}/       only the group ops; one sign-in covers both
  http://family.localhost:{port}/    no account needed: the PIN {DEMO_PIN}
  http://private.localhost:{port}/.warren/logout   sign out, on every resource at once
  user {DEMO_USER}, password {password}   (users: {directory}/users.yaml)

  curl -s http://private.localhost:{port}/            401 for API clients, not a redirect
  warren share ops --expires 1h -c {directory}/warren.yaml    a share link to ops

  curl -s {base}/ -H 'X-Forwarded-For: 6.6.6.6'    the application never sees the forged value

Policy: {directory}/policy.yaml (edit it: the gateway reloads it within a second;
        a broken edit is refused and the running policy stays).
Logs:   {directory}/gateway.log, portal.log
Explain a decision:  warren explain {directory}/policy.yaml --host app.localhost --path /admin/x
Press Ctrl-C to stop.
"""
