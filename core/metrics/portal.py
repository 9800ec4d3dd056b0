"""The portal's metrics: sign-ins by outcome, counted where the portal decides them; sessions
active, counted in the sign-in state at most every few seconds when Prometheus scrapes (never per
request); the policy's reloads (core.metrics.policy)."""

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.auth.sessions import active_sign_ins
from core.auth.signinstate import KeyValue
from core.metrics.policy import PolicyCollector
from core.policy.store import PolicyStore

# The outcomes of one sign-in attempt (a password form or a second factor).
SUCCEEDED = "succeeded"
FAILED = "failed"  # wrong name or password
LOCKED_OUT = "locked-out"  # refused by the regulation before the password was checked
SECOND_FACTOR_FAILED = "second-factor-failed"
OUTCOMES = (SUCCEEDED, FAILED, LOCKED_OUT, SECOND_FACTOR_FAILED)

SESSIONS_REUSE_SECONDS = 5.0  # a scraper asking more often reads the last count


class PortalMetrics:
    def __init__(self, store: PolicyStore, kv: KeyValue) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.kv = kv
        self.sign_ins = Counter(
            "warren_signins",
            "Sign-in attempts at the portal, by outcome: succeeded, failed (wrong name or "
            "password), locked-out (regulated), second-factor-failed (the words of the log).",
            ["outcome"],
            registry=self.registry,
        )
        self.resource_passwords = Counter(
            "warren_resource_password_attempts",
            "Resource password (PIN) attempts at the portal, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        # Every outcome from the start, at 0: rate() and alerts need the series before the first.
        self._sign_ins = {outcome: self.sign_ins.labels(outcome) for outcome in OUTCOMES}
        self._passwords = {
            outcome: self.resource_passwords.labels(outcome)
            for outcome in (SUCCEEDED, FAILED, LOCKED_OUT)
        }
        self._sessions: tuple[float, int] | None = None  # when counted, how many
        self.registry.register(PolicyCollector(lambda: store))
        self.registry.register(_Sessions(lambda: self._sessions))

    def signed_in(self, outcome: str) -> None:
        self._sign_ins[outcome].inc()

    def resource_password(self, outcome: str) -> None:
        self._passwords[outcome].inc()

    async def refresh(self) -> None:
        """Before a scrape: count the active sessions, unless counted a moment ago. A storage
        that does not answer leaves the last count out rather than stale."""
        last = self._sessions
        now = time.monotonic()
        if last is not None and now - last[0] < SESSIONS_REUSE_SECONDS:
            return
        try:
            count = len(await active_sign_ins(self.kv))
        except Exception:  # storage down: /readyz says so; the gauge is left out meanwhile
            self._sessions = None
            return
        self._sessions = (now, count)


class _Sessions(Collector):
    def __init__(self, counted: Callable[[], tuple[float, int] | None]) -> None:
        self._counted = counted

    def collect(self) -> Iterator[Metric]:
        counted = self._counted()
        if counted is not None:
            yield GaugeMetricFamily(
                "warren_sessions_active",
                "Sign-ins not yet expired or revoked, in the shared sign-in state (every node's).",
                value=counted[1],
            )
