"""docker/compose.yaml (a node) and compose.site.yaml (a site) validate with docker-compose, and
hold what the image needs of them: one build for every service, a health check on each, no
service that keeps a capability it was not given on purpose."""

from pathlib import Path
from typing import Any

import pytest

from tests.support import compose
from tests.support.ci import in_ci

DOCKER = Path(__file__).resolve().parent.parent.parent / "docker"
SITE_ENV = {"NODE": "https://node.example.com", "SITE": "home"}


@pytest.fixture(autouse=True)
def _needs_docker_compose() -> None:
    reason = compose.available()
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI must validate the compose files, but this machine {reason}")
        pytest.skip(reason)


def services(name: str) -> dict[str, Any]:
    resolved: dict[str, Any] = compose.config(DOCKER / name, SITE_ENV)["services"]
    return resolved


@pytest.mark.parametrize("name", ["compose.yaml", "compose.site.yaml"])
def test_it_validates_and_every_service_runs_the_one_image_with_a_health_check(name: str) -> None:
    found = services(name)
    assert len([service for service in found.values() if "build" in service]) == 1
    assert len({service["image"] for service in found.values()}) == 1
    for service_name, service in found.items():
        assert service["healthcheck"]["test"], service_name
        assert service["cap_drop"] == ["ALL"], service_name
        assert service["read_only"] is True, service_name


def test_the_site_file_asks_for_what_it_cannot_guess() -> None:
    with pytest.raises(AssertionError, match="the node's URL"):
        compose.config(DOCKER / "compose.site.yaml", {"SITE": "home", "NODE": ""})


def test_only_the_sidecar_of_a_node_administers_the_network() -> None:
    found = services("compose.yaml")
    assert found["sidecar"]["cap_add"] == ["NET_ADMIN"]
    for name in ("gateway", "portal"):
        assert "cap_add" not in found[name]
        assert "user" not in found[name]  # the image's: warren, not root
        assert found[name]["network_mode"] == "service:sidecar"
