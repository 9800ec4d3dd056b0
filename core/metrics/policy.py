"""The running policy as every process reports it: reloads, failed reloads, and its version.

Read from the PolicyStore at scrape time: its counters are the ones `warren status` shows, so
the two never disagree.
"""

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from core.policy.store import PolicyStore


class PolicyCollector(Collector):
    def __init__(self, store: Callable[[], PolicyStore | None]) -> None:
        self._store = store  # a getter: the gateway's store changes with its runtime

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily]:
        store = self._store()
        if store is None:
            return
        yield CounterMetricFamily(
            "warren_policy_reloads", "Policy reloads that loaded a policy.", value=store.reloads
        )
        yield CounterMetricFamily(
            "warren_policy_reload_failures",
            "Policy reloads (or pushed policies) refused; the last good policy kept running.",
            value=store.failed_reloads,
        )
        yield GaugeMetricFamily(
            "warren_policy_last_reload_failed",
            "1 while the last reload was refused (warren status shows why), else 0.",
            value=0 if store.last_error is None else 1,
        )
        current = store.current
        info = InfoMetricFamily("warren_policy", "The running policy's version (its digest).")
        info.add_metric([], {"digest": current.digest})
        yield info
        yield GaugeMetricFamily(
            "warren_policy_rules", "Rules in the running policy.", value=current.rule_count
        )
        yield GaugeMetricFamily(
            "warren_policy_resources",
            "Resources in the running policy.",
            value=len(current.resources),
        )
