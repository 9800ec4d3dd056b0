"""Several nodes serving one site, in network namespaces, for the end-to-end tests and the
benchmarks of issue 12 (several nodes, one service).

    user ──┐
  node-a ──┤
  node-b ──┼── wan (a router: every network reaches every other, as the internet does)
    site ──┤
   store ──┘   (Redis, which both nodes share)

Each node runs its gateway, portal and sidecar from its own warren.yaml, with `storage` on the
store's Redis, its own `node.name`, `node.url` and WireGuard subnet, and the portal on its own
loopback (127.0.0.1 is each namespace's own, so one policy.yaml holds for every node). Users
reach a node by its address, as round-robin DNS hands out one; `cut_site_from` drops only the
site's packets to and from one node, the way one broken link would.

Only private addresses, only inside the namespaces the lab made.
"""

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.auth.users import User, UsersFile, hash_secret, update
from demo import processes
from tests.support.browser import Browser, form_value
from tests.support.netlab import Lab, Namespace
from tests.support.tls import self_signed

USER = "10.202.1.2"
NODES = {"a": "10.202.2.2", "b": "10.202.3.2"}
SITE = "10.202.4.2"
STORE = "10.202.5.2"
WAN_SIDE = {"user": "10.202.1.1", "a": "10.202.2.1", "b": "10.202.3.1"}
WAN_SIDE |= {"site": "10.202.4.1", "store": "10.202.5.1"}
GATEWAY_PORT = 8443
PORTAL_PORT = 9180
REDIS_PORT = 6379
PORTAL_HOST = "auth.test"
SUBNETS = {"a": "100.89.1.0/24", "b": "100.89.2.0/24"}
PASSWORD = "correct horse battery"


SITE_BACKEND = 8000  # the site's application, on the site's own loopback


def site_policy(secret_hash: str, app_rules: str = "") -> str:
    """The policy most cluster tests serve: one site `home`, its application `app.test` (public,
    at SITE_BACKEND), and the portal; `app_rules` is the app's `rules:` value, if any."""
    rules = f"    rules: {app_rules}\n" if app_rules else ""
    return (
        f'version: 1\nsites:\n  home: {{secret_sha256: "{secret_hash}"}}\nresources:\n'
        f"{portal_resource()}  app:\n    host: app.test\n    auth: public\n"
        f"    targets: [{{site: home, host: 127.0.0.1, port: {SITE_BACKEND}}}]\n{rules}"
    )


def portal_resource() -> str:
    """The policy's portal entry: the same on every node (each portal on its own loopback)."""
    return (
        f"  portal:\n    host: {PORTAL_HOST}\n    auth: public\n"
        f"    targets: [{{host: 127.0.0.1, port: {PORTAL_PORT}}}]\n"
    )


@dataclass
class ClusterNode:
    name: str
    namespace: Namespace
    directory: Path
    address: str
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.directory / "warren.yaml"

    @property
    def policy_file(self) -> Path:
        return self.directory / "policy.yaml"

    @property
    def users_file(self) -> Path:
        return self.directory / "users.yaml"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def url(self) -> str:
        return f"https://{self.address}:{GATEWAY_PORT}"

    def warren(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A `warren` command on this node (in its namespace, with its warren.yaml)."""
        return self.namespace.run(
            [*processes.warren(*args), "--config", str(self.config)], stdin=stdin, timeout=120
        )


@dataclass
class ClusterLab:
    lab: Lab
    directory: Path
    wan: Namespace
    user: Namespace
    site: Namespace
    store: Namespace
    nodes: dict[str, ClusterNode]
    cert: Path
    redis: subprocess.Popen[bytes] | None = None
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def build(cls, lab: Lab, directory: Path) -> "ClusterLab":
        wan = lab.namespace("wan")
        wan.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)
        joined: dict[str, Namespace] = {}
        leaves = {"user": USER, **NODES, "site": SITE, "store": STORE}
        for role, address in leaves.items():
            namespace = lab.namespace(f"n{role}" if role in NODES else role)
            lab.link(wan, f"{WAN_SIDE[role]}/24", namespace, f"{address}/24")
            namespace.ip("route", "add", "default", "via", WAN_SIDE[role])
            joined[role] = namespace
        directory.mkdir(parents=True, exist_ok=True)
        cert = self_signed([*NODES.values(), PORTAL_HOST, "node-a.test", "node-b.test"])
        nodes = {
            name: ClusterNode(name, joined[name], directory / f"node-{name}", address)
            for name, address in NODES.items()
        }
        wan.run(["nft", "-f", "-"], check=True, stdin="table inet cut {\n}\n")
        return cls(
            lab, directory, wan, joined["user"], joined["site"], joined["store"], nodes, cert
        )

    @property
    def storage(self) -> str:
        return f"redis://{STORE}:{REDIS_PORT}/0"

    def start_redis(self, *extra: str) -> None:
        args = ["/usr/bin/redis-server", "--port", str(REDIS_PORT), "--bind", STORE]
        # protected mode refuses non-loopback clients without a password: the store namespace
        # is the lab's own, reached only by its nodes
        args += ["--protected-mode", "no", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), *extra]
        self.redis = self.store.start(args, log=self.directory / "redis.log")
        with self.store.entered():
            processes.wait_for_port(REDIS_PORT, self.redis, timeout=30, host=STORE)

    def stop_redis(self) -> None:
        if self.redis is not None:
            processes.stop(self.redis)
            self.store.processes.remove(self.redis)
            self.redis = None

    def write_nodes(self, policy: str, settings: str = "", probe_interval: str = "1s") -> None:
        """The same policy.yaml on every node, and each node's own warren.yaml (trusting the
        lab's certificate for the other node's, as relays need)."""
        for node in self.nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.policy_file.write_text(policy)
            node.config.write_text(
                f"public_url: http://{PORTAL_HOST}:{GATEWAY_PORT}\n"
                f"listen: 0.0.0.0:{GATEWAY_PORT}\n"
                f"certs: [{self.cert}]\n"
                "policy_file: policy.yaml\nusers_file: users.yaml\nstate_dir: state\n"
                "reload_poll: 0.2s\n"
                f"storage: {self.storage}\n"
                f"node: {{name: {node.name}, url: {node.url}, ca_file: {self.cert}}}\n"
                f"portal: {{listen: 127.0.0.1:{PORTAL_PORT}}}\n"
                f"wireguard: {{interface: {self.lab.interface('n' + node.name)}, "
                f"subnet: {SUBNETS[node.name]}, probe_interval: {probe_interval}}}\n"
                f"{settings}"
            )

    def start_node(
        self, name: str, parts: Sequence[str] = ("sidecar", "portal", "gateway")
    ) -> None:
        node = self.nodes[name]
        for part in parts:
            process = node.namespace.start(
                processes.warren(part, "--config", str(node.config)),
                log=self.directory / f"{part}-{name}.log",
            )
            node.running[part] = process
            listening = {"gateway": GATEWAY_PORT, "portal": PORTAL_PORT}.get(part)
            if listening is not None:
                with node.namespace.entered():
                    host = "127.0.0.1" if part == "portal" else node.address
                    processes.wait_for_port(listening, process, timeout=60, host=host)

    def stop_node(self, name: str, parts: Sequence[str] = ("gateway", "sidecar", "portal")) -> None:
        node = self.nodes[name]
        for part in parts:
            process = node.running.pop(part, None)
            if process is not None:
                processes.stop(process)
                node.namespace.processes.remove(process)

    def kill_node(self, name: str, parts: Sequence[str] = ("gateway", "sidecar")) -> None:
        """SIGKILL, as a node that loses power or crashes: nothing is said or cleaned up."""
        node = self.nodes[name]
        for part in parts:
            process = node.running.pop(part, None)
            if process is not None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                node.namespace.processes.remove(process)

    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> None:
        """The same account in every node's users.yaml, as a copy by hand would make it."""
        user = User(password=hash_secret(PASSWORD), email=f"{name}@example.com", groups=groups)
        for node in self.nodes.values():
            update(node.users_file, lambda users: UsersFile(users={**users.users, name: user}))

    def sign_in(self, via: str, host: str, user: str) -> Browser:
        """A browser signed in to `host` through node `via`, as a person does it (call inside
        `from_user()`)."""
        browser = self.browser(via)
        page, at = browser.go(f"http://{host}:{GATEWAY_PORT}/")
        assert at.startswith(f"http://{PORTAL_HOST}:{GATEWAY_PORT}/sign-in"), browser.visited
        portal = f"http://{PORTAL_HOST}:{GATEWAY_PORT}"
        landed, at = browser.go(
            f"{portal}/sign-in",
            "POST",
            data={
                "csrf": form_value(page.text, "csrf"),
                "rd": form_value(page.text, "rd"),
                "username": user,
                "password": PASSWORD,
            },
            origin=portal,
        )
        assert landed.status_code == 200, browser.visited
        assert at.startswith(f"http://{host}:"), browser.visited
        return browser

    def start_agent(
        self, name: str, secret: str, via: Sequence[str] = ("a",), *extra: str
    ) -> subprocess.Popen[bytes]:
        """The site agent, told of the nodes in `via` only (it learns the others from them)."""
        secret_file = self.directory / "site" / f"{name}.secret"
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secret + "\n")
        secret_file.chmod(0o600)
        nodes = [word for node in via for word in ("--node", self.nodes[node].url)]
        agent = self.site.start(
            processes.warren(
                "site",
                *nodes,
                "--site",
                name,
                "--secret-file",
                str(secret_file),
                "--state-dir",
                str(self.directory / "site" / "state"),
                "--interface",
                self.lab.interface(f"s{len(self.agents)}"),
                "--ca-file",
                str(self.cert),
                "--probe-interval",
                "1",
                "--refresh",
                "2",
                *extra,
            ),
            log=self.directory / f"agent-{name}.log",
        )
        self.agents[name] = agent
        return agent

    def start_in_site(self, args: Sequence[str], name: str, port: int) -> None:
        process = self.site.start(args, log=self.directory / f"{name}.log")
        with self.site.entered():
            processes.wait_for_port(port, process, timeout=60)

    def cut_site_from(self, name: str) -> None:
        """Drop every packet between the site and one node: that link alone is broken."""
        node = self.nodes[name].address
        rules = (
            f"add chain inet cut {name} {{ type filter hook forward priority 0; }}\n"
            f"add rule inet cut {name} ip saddr {SITE} ip daddr {node} drop\n"
            f"add rule inet cut {name} ip saddr {node} ip daddr {SITE} drop\n"
        )
        self.wan.run(["nft", "-f", "-"], check=True, stdin=rules)

    def restore_site_to(self, name: str) -> None:
        self.wan.run(["nft", "delete", "chain", "inet", "cut", name], check=True)

    def site_online(self, name: str, site: str) -> bool:
        """Whether node `name`'s sidecar has the site's tunnel up (its control socket)."""
        from core import control
        from core.tunnels import sidecar_socket

        try:
            status = control.call(sidecar_socket(self.nodes[name].state_dir), "status", timeout=10)
        except (OSError, ValueError):  # the sidecar is (re)starting
            return False
        return any(entry["site"] == site and entry["online"] for entry in status["sites"])

    def browser(self, name: str) -> Browser:
        """A browser whose every name resolves to node `name`; use it inside `from_user()`."""
        return Browser(GATEWAY_PORT, self.nodes[name].address)

    @contextmanager
    def from_user(self) -> Iterator[None]:
        with self.user.entered():
            yield

    def request(
        self, name: str, host: str, path: str = "/", timeout: float = 5.0, **headers: str
    ) -> httpx.Response:
        """A request from the user's namespace to node `name`."""
        with self.user.entered(), httpx.Client(timeout=timeout) as client:
            return client.get(
                f"http://{self.nodes[name].address}:{GATEWAY_PORT}{path}",
                headers={"host": host, **headers},
            )

    def logs(self) -> str:
        return "".join(
            f"\n--- {path.name} ---\n{path.read_text(errors='replace')[-5000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )
