"""Active health checks for resources with `health:`; a target that fails leaves routing."""

from addons.runtime import Runtime
from core.health import HealthMonitor


class Health:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.monitor: HealthMonitor | None = None

    def running(self) -> None:
        store = self.runtime.store
        if store is None:
            return
        runtime = self.runtime
        self.monitor = HealthMonitor(runtime.upstreams, resolve=lambda t: runtime.sites.resolve(t))
        self.monitor.update(store.current)
        store.subscribe(self.monitor.update)

    def done(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
