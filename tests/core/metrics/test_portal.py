"""core.metrics.portal: every sign-in outcome present from the start, and sessions active counted
in the sign-in state."""

import asyncio
from pathlib import Path

from core.metrics.portal import OUTCOMES, PortalMetrics
from tests.core.metrics.registries import exposed, portal_metrics, store


def test_outcomes_start_at_zero_and_sessions_are_counted(tmp_path: Path) -> None:
    from core.auth.signinstate import open_kv

    fresh = PortalMetrics(store(tmp_path / "fresh"), open_kv("memory://", tmp_path / "fresh"))
    samples = exposed(fresh.registry)
    assert {s.labels["outcome"]: s.value for s in samples["warren_signins_total"]} == dict.fromkeys(
        OUTCOMES, 0.0
    )
    assert "warren_sessions_active" not in samples  # not counted before a scrape asks
    asyncio.run(fresh.refresh())
    assert exposed(fresh.registry)["warren_sessions_active"][0].value == 0

    counted = exposed(portal_metrics(tmp_path / "used").registry)
    assert all(s.value == 1 for s in counted["warren_signins_total"])
