"""What the console lists of a resource (authportal.console.pages)."""

from typing import Any

from authportal.console.pages import TargetOf, _resources
from core.policy.check import Capabilities
from core.policy.load import parse_policy


def test_a_resource_lists_its_routes_targets_after_its_own() -> None:
    policy = parse_policy(
        """
version: 1
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 1}]
    routes:
      - {path: "/api/*", targets: [{host: 127.0.0.1, port: 2}, {host: 127.0.0.1, port: 1}]}
""",
        Capabilities(),
    )
    states: dict[TargetOf, dict[str, Any]] = {
        ("app", None, "http://127.0.0.1:2"): {"state": "down"}
    }
    [listed] = _resources(policy, states)
    assert [(t["url"], t["state"]) for t in listed["targets"]] == [
        ("http://127.0.0.1:1", None),
        ("http://127.0.0.1:2", {"state": "down"}),
    ]
