"""A node and a site in containers of docker/Dockerfile's image, started as docker/compose.yaml
and compose.site.yaml declare them (tests/support/compose.py), in the tunnel tests' namespaces
(tests/support/tunnellab.py): the node's three containers share the node's namespace, as they
share the sidecar's under compose; the site's agent runs in the site's (compose: host network).

Only the configuration is the lab's: docker/etc.example with a certificate from the lab's CA
instead of ACME and the lab's host names, and the agent told to trust that CA.
"""

import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from demo import processes
from tests.support import compose, podman
from tests.support.browser import Browser
from tests.support.netlab import Lab
from tests.support.tls import LocalCa
from tests.support.tunnellab import NODE, NODE_FOR_USER, TunnelLab, secret_and_hash

DOCKER = Path(__file__).resolve().parent.parent.parent / "docker"
WARREN_ID = 10001  # the image's warren user and group
APPLICATION = 3000  # on the site's loopback
HOSTS = {"portal": "auth.test", "app": "app.test", "www": "www.test"}
UNKNOWN = "unknown.test"  # in the certificate, in no resource
STATE = "/var/lib/warren"


@dataclass
class ContainerLab:
    tunnels: TunnelLab
    directory: Path
    image: str
    prefix: str
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def container(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def exec(self, service: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return podman.run("exec", "--interactive", self.container(service), *args, stdin=stdin)

    def health_check(self, service: str) -> subprocess.CompletedProcess[str]:
        return podman.run("healthcheck", "run", self.container(service))

    def inspect(self, service: str, value: str) -> str:
        return podman.podman("inspect", "--format", value, self.container(service)).strip()

    def sites(self) -> dict[str, Any]:
        """sites.json, as the sidecar wrote it for the gateway."""
        done = self.exec("gateway", "cat", f"{STATE}/sites.json")
        found: dict[str, Any] = json.loads(done.stdout)["sites"] if done.returncode == 0 else {}
        return found

    def site_online(self) -> bool:
        return bool(self.sites().get("home", {}).get("online"))

    def browser(self) -> "HttpsBrowser":
        return HttpsBrowser(port=443, address=NODE_FOR_USER, ca=str(self.ca))

    def get(self, host: str, path: str = "/") -> httpx.Response:
        """A request from the user's namespace, over HTTPS."""
        with self.tunnels.from_user():
            return self.browser().request("GET", f"https://{host}{path}", accept="*/*")

    def logs(self) -> str:
        return "".join(f"\n--- {name} ---\n{podman.logs(name)[-4000:]}" for name in self.containers)

    def volume(self, name: str) -> str:
        volume = f"{self.prefix}-{name}"
        podman.podman("volume", "create", volume)
        self.volumes.append(volume)
        return volume

    def start(self, service: dict[str, Any], name: str, network: str, **options: Any) -> None:
        self.containers.append(self.container(name))
        compose.start(service, name=self.container(name), network=network, **options)


@dataclass
class HttpsBrowser(Browser):
    """Browser's cookies and redirects, over HTTPS to the node's address: each request's TLS
    name and Host are its URL's host, and the certificate is checked against the lab's CA."""

    address: str = ""
    ca: str = ""

    def request(
        self, method: str, url: str, *, data: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {"host": parts.netloc, "accept": self.accept, **headers}
        cookies = self.jar.get(host)
        if cookies:
            sent["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        with httpx.Client(verify=ssl.create_default_context(cafile=self.ca), timeout=30) as client:
            response = client.request(
                method,
                f"https://{self.address}{target}",
                headers=sent,
                data=data,
                extensions={"sni_hostname": host},
            )
        self.visited.append(f"{method} {url} -> {response.status_code}")
        for line in response.headers.get_list("set-cookie"):
            self._store(host, line)
        return response


def _node_settings(ca: LocalCa, etc: Path) -> None:
    settings = yaml.safe_load((DOCKER / "etc.example" / "warren.yaml").read_text())
    settings.pop("acme", None)
    (etc / "certs").mkdir()
    ca.issue([NODE, NODE_FOR_USER, *HOSTS.values(), UNKNOWN], etc / "certs" / "node.pem")
    settings["certs"] = ["certs/node.pem"]
    settings["public_url"] = f"https://{HOSTS['portal']}"
    (etc / "warren.yaml").write_text(yaml.safe_dump(settings))


def _node_policy(etc: Path, secret_hash: str) -> None:
    policy = yaml.safe_load((DOCKER / "etc.example" / "policy.yaml").read_text())
    policy["resources"]["portal"]["host"] = HOSTS["portal"]
    policy["sites"] = {"home": {"secret_sha256": secret_hash}}
    target = [{"site": "home", "host": "127.0.0.1", "port": APPLICATION}]
    policy["resources"]["app"] = {"host": HOSTS["app"], "targets": target}
    policy["resources"]["www"] = {"host": HOSTS["www"], "auth": "public", "targets": target}
    (etc / "policy.yaml").write_text(yaml.safe_dump(policy))


def _give_to_warren(etc: Path) -> None:
    """As compose.yaml says: ./etc owned by the image's warren, and nobody else's."""
    for path in [etc, *etc.rglob("*")]:
        shutil.chown(path, WARREN_ID, WARREN_ID)
        path.chmod(0o750 if path.is_dir() else 0o640)


def _start_node(lab: ContainerLab, secret_hash: str) -> None:
    node = lab.directory / "node"
    (node / "etc").mkdir(parents=True)
    shutil.copy(DOCKER / "compose.yaml", node / "compose.yaml")
    ca = LocalCa.fresh()
    ca.write(lab.ca)
    _node_settings(ca, node / "etc")
    _node_policy(node / "etc", secret_hash)
    _give_to_warren(node / "etc")
    services = compose.config(node / "compose.yaml", {"WARREN_IMAGE": lab.image})["services"]
    volumes = {"warren-state": lab.volume("state")}
    own = f"ns:/run/netns/{lab.tunnels.node.name}"  # in place of the sidecar's published ports
    for name in ("sidecar", "gateway", "portal"):  # depends_on: the sidecar's namespace first
        joins = services[name].get("network_mode", "").removeprefix("service:")
        network = f"container:{lab.container(joins)}" if joins else own
        lab.start(services[name], name, network, volumes=volumes)
    with lab.tunnels.node.entered():
        processes.wait_for_port(443, timeout=60)


def _start_site(lab: ContainerLab, secret: str) -> None:
    site = lab.directory / "site"
    (site / "site").mkdir(parents=True, mode=0o700)
    shutil.copy(DOCKER / "compose.site.yaml", site / "compose.site.yaml")
    secret_file = site / "site" / "home.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    shutil.copy(lab.ca, site / "site" / "ca.pem")
    env = {"WARREN_IMAGE": lab.image, "NODE": f"https://{NODE}", "SITE": "home"}
    (agent,) = compose.config(site / "compose.site.yaml", env)["services"].values()
    lab.start(
        agent,
        "agent",
        f"ns:/run/netns/{lab.tunnels.site.name}",
        volumes={"warren-site": lab.volume("site")},
        extra=("--ca-file", "/etc/warren-site/ca.pem"),
    )


@contextmanager
def container_lab(directory: Path, image: str) -> Iterator[ContainerLab]:
    """The node and the site started, the site's application listening; all gone after, the
    containers' logs printed (pytest shows them when a test failed)."""
    namespaces = Lab()
    try:
        tunnels = TunnelLab.build(namespaces, directory / "lab")
        lab = ContainerLab(tunnels, directory, image, f"warren-{namespaces.tag}")
        tunnels.start_in_site(processes.backend(APPLICATION, "home"), "application", APPLICATION)
        secret, secret_hash = secret_and_hash()
        try:
            _start_node(lab, secret_hash)
            _start_site(lab, secret)
            yield lab
        finally:
            logs = lab.logs()
            podman.remove("container", lab.containers)
            podman.remove("volume", lab.volumes)
            print(logs)
    finally:
        namespaces.close()
