"""The image, built from docker/Dockerfile with podman, running a node and a site as
docker/compose.yaml and compose.site.yaml declare them (tests/support/containerlab.py): the
gateway answers, the site registers and goes online, its application answers through the
tunnel, a user added with `warren user add` in the gateway's container signs in through the
portal, state belongs to whoever writes it, every service's health check passes, and each stops
cleanly when asked."""

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import netns, podman
from tests.support.browser import form_value
from tests.support.containerlab import HOSTS, STATE, UNKNOWN, ContainerLab, container_lab
from tests.support.tunnellab import NODE_FOR_USER
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGE = "localhost/warren:test"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def image() -> str:
    netns.require()
    podman.require()
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    podman.build_image(IMAGE, podman.base_image(), version, revision or "unknown")
    return IMAGE


@pytest.fixture(scope="module")
def lab(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerLab]:
    with container_lab(tmp_path_factory.mktemp("containers"), image) as running:
        yield running


@pytest.fixture
def online(lab: ContainerLab) -> ContainerLab:
    eventually(lab.site_online, timeout=60)
    return lab


def test_the_image_is_labelled_and_runs_as_warren(lab: ContainerLab) -> None:
    labels = podman.podman("image", "inspect", "--format", "{{json .Labels}}", IMAGE)
    assert '"org.opencontainers.image.title":"Warren"' in labels
    assert lab.inspect("gateway", "{{.Config.User}}") == "10001:10001"
    assert lab.exec("gateway", "id", "-un").stdout == "warren\n"


def test_the_gateway_answers_over_https(lab: ContainerLab) -> None:
    assert lab.get(UNKNOWN).status_code == 404


def test_plain_http_on_port_80_is_sent_to_https(lab: ContainerLab) -> None:
    """compose publishes :80; the sample's http_listen is what answers there."""
    with lab.tunnels.from_user(), httpx.Client(timeout=10) as client:
        answer = client.get(f"http://{NODE_FOR_USER}/x?y=1", headers={"host": HOSTS["www"]})
    assert (answer.status_code, answer.headers["location"]) == (
        308,
        f"https://{HOSTS['www']}/x?y=1",
    )


def test_the_site_goes_online_and_its_application_answers_through_the_tunnel(
    online: ContainerLab,
) -> None:
    # The gateway reads sites.json every reload_poll: it routes to the site a moment after.
    eventually(lambda: online.get(HOSTS["www"], "/hello").status_code == 200, timeout=30)
    answer = online.get(HOSTS["www"], "/hello")
    assert answer.status_code == 200, online.logs()
    assert answer.json()["backend"] == "home"  # the application on the site's loopback
    assert answer.json()["target"] == "/hello"


def test_a_user_added_in_the_gateways_container_signs_in_through_the_portal(
    online: ContainerLab,
) -> None:
    added = online.exec(
        "gateway", "warren", "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert (added.returncode, added.stdout) == (0, f"added alice to {STATE}/users.yaml\n")
    portal = f"https://{HOSTS['portal']}"
    with online.tunnels.from_user():
        user = online.browser()
        page, at = user.go(f"https://{HOSTS['app']}/mine")
        assert at.startswith(f"{portal}/sign-in?rd="), user.visited
        form = {"csrf": form_value(page.text, "csrf"), "rd": form_value(page.text, "rd")}
        credentials = {"username": "alice", "password": PASSWORD}
        landed, at = user.go(f"{portal}/sign-in", "POST", {**form, **credentials}, origin=portal)
        assert (landed.status_code, at) == (200, f"https://{HOSTS['app']}/mine"), user.visited
        seen = user.request("GET", at, accept="application/json").json()
    assert {name.lower(): value for name, value in seen["headers"]}["remote-user"] == "alice"


def test_users_on_the_read_only_mount_are_refused_in_one_line(lab: ContainerLab) -> None:
    refused = lab.exec(
        "gateway", "env", "WARREN_USERS_FILE=/etc/warren/users.yaml",
        "warren", "user", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "error: /etc/warren/users.yaml: cannot write: Read-only file system"
    )
    assert refused.stderr.count("\n") == 1


def test_a_site_is_added_in_the_gateways_container_without_editing_its_policy(
    lab: ContainerLab,
) -> None:
    """What policy.yaml in etc.example tells people to run: ./etc is read-only in there."""
    added = lab.exec("gateway", "warren", "site", "add", "cabin", "--no-edit")
    assert added.returncode == 0, added.stderr
    assert "add this line under `sites:` in /etc/warren/policy.yaml:" in added.stderr
    assert re.search(r"^  cabin: \{secret_sha256: \"[0-9a-f]{64}\"\}$", added.stderr, re.M)
    assert len(added.stdout.strip()) >= 32  # the secret, for the site's compose.site.yaml


def test_state_belongs_to_whoever_writes_it(online: ContainerLab) -> None:
    paths = (STATE, f"{STATE}/sidecar", f"{STATE}/sites.json", f"{STATE}/keys")
    listing = online.exec("sidecar", "stat", "-c", "%n %U %G %a", *paths)
    assert listing.stdout.splitlines() == [
        f"{STATE} warren warren 2770",
        f"{STATE}/sidecar root warren 2700",  # its WireGuard key: the sidecar's alone
        f"{STATE}/sites.json root warren 644",  # for the gateway to read
        f"{STATE}/keys warren warren 2700",  # the portal's signing keys
    ], listing.stderr
    agent = online.exec("agent", "stat", "-c", "%n %U %a", "/var/lib/warren-site/home.key")
    assert agent.stdout == "/var/lib/warren-site/home.key root 600\n", agent.stderr
    assert "PermissionError" not in online.logs()


@pytest.mark.parametrize("service", ["sidecar", "gateway", "portal", "agent"])
def test_each_services_health_check_passes(online: ContainerLab, service: str) -> None:
    eventually(lambda: online.health_check(service).returncode == 0, timeout=60)
    assert online.inspect(service, "{{.State.Health.Status}}") == "healthy"


def test_each_service_stops_cleanly_when_asked(lab: ContainerLab) -> None:
    """As `docker compose down` asks: SIGTERM to each, which ends it (not the SIGKILL after)."""
    for service in ("agent", "portal", "gateway", "sidecar"):
        podman.podman("stop", "--time", "30", lab.container(service))
        assert lab.inspect(service, "{{.State.ExitCode}}") == "0", lab.logs()
