"""docs/grafana/warren.json: a dashboard Grafana imports (schema 39, a Prometheus data source
variable), whose every query names only metrics our registries expose, by their exposed names."""

import json
import re
from pathlib import Path
from typing import Any

from tests.core.metrics.registries import (
    exposed,
    gateway_metrics,
    portal_metrics,
    sidecar_metrics,
)

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "warren.json"
METRIC = re.compile(r"\bwarren_[a-z0-9_]+")


def exprs(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append(target["expr"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def test_every_metric_the_dashboard_queries_exists(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    gateway, _limiter = gateway_metrics(tmp_path / "gateway")
    names = {
        *exposed(gateway.registry),
        *exposed(portal_metrics(tmp_path / "portal").registry),
        *exposed(sidecar_metrics(tmp_path / "sidecar")),
    }
    queried = {name for expr in exprs(dashboard) for name in METRIC.findall(expr)}
    assert len(queried) >= 15
    assert queried - names == set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
