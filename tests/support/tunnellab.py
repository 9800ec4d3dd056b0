"""Warren's tunnel topology in network namespaces, for the end-to-end tests and the benchmarks.

    user ──── node ──── router ──── site
               │ (the node has no route to the site's network: the router masquerades the site,
              lan  as a home router would; the site reaches out, nothing reaches in)

`add_lan` adds another network behind the node (its LAN, or a Docker bridge), for the isolation
tests: what a site must not reach through a node that forwards IP.

The node runs the gateway and the sidecar from one warren.yaml; the site runs the site agent and
its applications on its own loopback. Only private addresses, only inside the namespaces.
"""

import hashlib
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo import processes
from tests.support.netlab import Lab, Namespace
from tests.support.tls import self_signed

USER, NODE_FOR_USER = "10.201.1.2", "10.201.1.1"
NODE, ROUTER_UPLINK = "10.201.2.1", "10.201.2.2"
ROUTER_SITE_SIDE, SITE = "10.201.3.1", "10.201.3.2"
NODE_FOR_LAN, LAN = "10.201.4.1", "10.201.4.2"
GATEWAY_PORT = 8443
SUBNET = "100.89.0.0/24"


def secret_and_hash() -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class TunnelLab:
    lab: Lab
    directory: Path
    user: Namespace
    node: Namespace
    router: Namespace
    site: Namespace
    uplink: str  # the router's end of the node link: cut it to cut the site off
    cert: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    gateway: subprocess.Popen[bytes] | None = None
    sidecar: subprocess.Popen[bytes] | None = None
    lan: Namespace | None = None

    @classmethod
    def build(cls, lab: Lab, directory: Path) -> "TunnelLab":
        user, node = lab.namespace("user"), lab.namespace("node")
        router, site = lab.namespace("rtr"), lab.namespace("site")
        lab.link(user, f"{USER}/24", node, f"{NODE_FOR_USER}/24")
        _node_end, uplink = lab.link(node, f"{NODE}/24", router, f"{ROUTER_UPLINK}/24")
        lab.link(router, f"{ROUTER_SITE_SIDE}/24", site, f"{SITE}/24")
        site.ip("route", "add", "default", "via", ROUTER_SITE_SIDE)
        # /proc/sys/net is the namespace's own (no need for procps' sysctl).
        router.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)
        router.run(
            ["nft", "-f", "-"],
            check=True,
            stdin=(
                "table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
                f'  oifname "{uplink}" masquerade\n }}\n}}\n'
            ),
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert = self_signed([NODE, NODE_FOR_USER, "node.test"])
        return cls(lab, directory, user, node, router, site, uplink, cert)

    def add_lan(self) -> Namespace:
        """A network behind the node, whose hosts route everything through it."""
        if self.lan is None:
            self.lan = self.lab.namespace("lan")
            self.lab.link(self.node, f"{NODE_FOR_LAN}/24", self.lan, f"{LAN}/24")
            self.lan.ip("route", "add", "default", "via", NODE_FOR_LAN)
        return self.lan

    def set_forwarding(self, on: bool) -> None:
        """The node forwarding IP, as Docker hosts and routers do."""
        command = f"echo {int(on)} > /proc/sys/net/ipv4/ip_forward"
        self.node.run(["sh", "-c", command], check=True)

    @property
    def node_url(self) -> str:
        return f"https://{NODE}:{GATEWAY_PORT}"

    @property
    def state_dir(self) -> Path:
        return self.directory / "node" / "state"

    @property
    def config(self) -> Path:
        return self.directory / "node" / "warren.yaml"

    @property
    def policy_file(self) -> Path:
        return self.directory / "node" / "policy.yaml"

    def write_node(self, policy: str, probe_interval: str = "1s", isolate: bool = True) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.policy_file.write_text(policy)
        self.config.write_text(
            f"listen: 0.0.0.0:{GATEWAY_PORT}\n"
            f"certs: [{self.cert}]\n"
            "policy_file: policy.yaml\n"
            "state_dir: state\n"
            "reload_poll: 0.2s\n"
            f"wireguard: {{interface: {self.lab.interface('n')}, subnet: {SUBNET}, "
            f"probe_interval: {probe_interval}, isolate: {str(isolate).lower()}}}\n"
        )

    def start_node(self) -> None:
        self.start_sidecar()
        self.gateway = self.node.start(
            processes.warren("gateway", "--config", str(self.config)),
            log=self.directory / "gateway.log",
        )
        self.wait_for(self.node, GATEWAY_PORT, self.gateway)

    def start_sidecar(self) -> None:
        self.sidecar = self.node.start(
            processes.warren("sidecar", "--config", str(self.config)),
            log=self.directory / "sidecar.log",
        )

    def stop_sidecar(self) -> None:
        if self.sidecar is not None:
            processes.stop(self.sidecar)
            self.node.processes.remove(self.sidecar)
            self.sidecar = None

    def start_agent(self, name: str, secret: str, *extra: str) -> subprocess.Popen[bytes]:
        secret_file = self.directory / "site" / f"{name}.secret"
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(secret + "\n")
        secret_file.chmod(0o600)
        agent = self.site.start(
            processes.warren(
                "site",
                "--node",
                self.node_url,
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
        self.wait_for(self.site, port, process)

    def wait_for(
        self, namespace: Namespace, port: int, process: subprocess.Popen[bytes] | None
    ) -> None:
        with namespace.entered():
            processes.wait_for_port(port, process, timeout=60)

    def cut(self) -> None:
        self.router.ip("link", "set", self.uplink, "down")

    def restore(self) -> None:
        self.router.ip("link", "set", self.uplink, "up")

    def block_udp(self, port: int = 51820) -> None:
        """The site's network drops UDP towards the node's WireGuard port (the TCP/443
        fallback's tests and benchmark); a table of its own, so allow_udp removes just that."""
        rules = (
            "table inet block_udp {\n chain forward {\n"
            "  type filter hook forward priority filter;\n"
            f"  udp dport {port} counter drop\n }}\n}}\n"
        )
        self.router.run(["nft", "-f", "-"], check=True, stdin=rules)

    def allow_udp(self) -> None:
        self.router.run(["nft", "delete", "table", "inet", "block_udp"], check=True)

    def udp_dropped(self) -> int:
        shown = self.router.run(["nft", "list", "table", "inet", "block_udp"], check=True).stdout
        return int(shown.split("packets ")[1].split()[0])

    def request(self, host: str, path: str = "/", timeout: float = 5.0) -> httpx.Response:
        """A request from the user's namespace to the gateway."""
        with self.user.entered(), httpx.Client(timeout=timeout) as client:
            return client.get(
                f"http://{NODE_FOR_USER}:{GATEWAY_PORT}{path}", headers={"host": host}
            )

    @contextmanager
    def from_user(self) -> Iterator[None]:
        with self.user.entered():
            yield

    def sidecar_status(self) -> dict[str, Any]:
        from core import control
        from core.tunnels import sidecar_socket

        return control.call(sidecar_socket(self.state_dir), "status", timeout=10)

    def site_state(self, name: str) -> dict[str, Any]:
        sites: list[dict[str, Any]] = self.sidecar_status()["sites"]
        (found,) = [site for site in sites if site["site"] == name]
        return found

    def site_online(self, name: str) -> bool:
        try:
            return bool(self.site_state(name)["online"])
        except (OSError, ValueError):  # the sidecar is (re)starting, or the site is not listed
            return False

    def logs(self) -> str:
        return "".join(
            f"\n--- {path.name} ---\n{path.read_text(errors='replace')[-6000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )
