"""warren_config: builds the gateway's Runtime from warren.yaml (addons.runtime), sets the
mitmproxy options a Warren gateway needs, and keeps the policy current.

A reload is asked for by a change to the file, by SIGHUP, or by `warren reload` over the control
socket. A file that does not validate is refused and the last good policy keeps running.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import mode_specs

from addons.options import gateway_options
from addons.runtime import Runtime, RuntimeSlot, build_runtime
from core.balance import target_states
from core.problems import ConfigError
from core.reloading import Reloading
from core.sites import OfflineListener

log = logging.getLogger("warren.config")

OPTIONAL_TEXT = cast(type, str | None)  # mitmproxy's option API is typed as taking a class


async def _serve_modes(modes: list[str]) -> None:
    proxyserver = ctx.master.addons.get("proxyserver")
    if proxyserver is not None:
        await proxyserver.servers.update([mode_specs.ProxyMode.parse(mode) for mode in modes])


class Config:
    def __init__(
        self,
        slot: RuntimeSlot,
        on_site_offline: OfflineListener,
        status: Iterable[Callable[[], dict[str, Any]]] = (),
        refusals: Callable[[], Sequence[Mapping[str, object]]] = tuple,
    ) -> None:
        self.slot = slot
        self.status_parts = tuple(status)  # what other parts add to `warren status`
        self.refusals = refusals  # the access log's last refused requests, newest first
        self.on_site_offline = on_site_offline
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading: Reloading | None = None
        self._started: Runtime | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "warren_config", OPTIONAL_TEXT, None, "Path to warren.yaml (Warren's node settings)."
        )

    def configure(self, updated: set[str]) -> None:
        if "warren_config" not in updated or not ctx.options.warren_config:
            return
        try:
            runtime = build_runtime(
                Path(ctx.options.warren_config), on_site_offline=self.on_site_offline
            )
        except ConfigError as error:
            raise exceptions.OptionsError(f"Warren cannot start:\n{error}") from None
        self._apply_options(runtime)
        replaced = self.slot.swap(runtime)
        if replaced is not None and self._started is replaced:
            # warren_config changed while running: the new services start, the old ones end.
            self._spawn(self._restart(replaced, runtime))
        policy = runtime.policy
        log.info(
            "Warren: policy %s from %s (%d resources, %d rules)",
            policy.digest,
            runtime.settings.policy_file,
            len(policy.resources),
            policy.rule_count,
        )

    def _apply_options(self, runtime: Runtime) -> None:
        wanted = {
            name: value
            for name, value in gateway_options(runtime.settings, list(ctx.options.mode)).items()
            if name in ctx.options  # a master without a proxy server (tests) lacks some
        }
        ctx.options.update(**wanted)
        if "mode" in wanted and ctx.master.addons.get("proxyserver") is not None:
            # mitmdump loads scripts after it has started its listeners with the default mode;
            # move them to Warren's at once rather than at the next mode change.
            self._spawn(_serve_modes(wanted["mode"]))

    async def running(self) -> None:
        runtime = self.slot.runtime
        if runtime is None:
            log.error("warren_config is not set: every request will be answered with 503")
            return
        await self._start(runtime)

    async def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._stop_reloading()
        if self._started is not None:
            await self._started.close()

    async def _start(self, runtime: Runtime) -> None:
        """The runtime's own watches, and the one reload wiring every Warren process has
        (core.reloading: the file, SIGHUP, `warren reload`)."""
        self._started = runtime
        await runtime.start()
        self._stop_reloading()
        self._reloading = await Reloading.start(
            files=[runtime.settings.policy_file, *runtime.certificates.watched],
            interval=runtime.settings.reload_poll.total_seconds(),
            reload=runtime.reload,
            control_path=runtime.settings.control_path,
            commands={"status": self._status, "refusals": self._refusals, "targets": self._targets},
        )

    async def _restart(self, old: Runtime, new: Runtime) -> None:
        await old.close()
        await self._start(new)

    def _stop_reloading(self) -> None:
        if self._reloading is not None:
            self._reloading.close()
            self._reloading = None

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refusals(self) -> dict[str, Any]:
        """The admin console's last refusals (addons.accesslog), as the access log wrote them."""
        return {"ok": True, "refusals": list(self.refusals())}

    async def _targets(self) -> dict[str, Any]:
        """The admin console's view of each resource's targets: up, down or unroutable now."""
        runtime = self.slot.runtime
        if runtime is None:
            return {"ok": False, "error": "warren_config is not set"}
        return {"ok": True, "targets": target_states(runtime.policy, runtime.upstreams)}

    async def _status(self) -> dict[str, Any]:
        runtime = self.slot.runtime
        if runtime is None:
            return {"ok": False, "error": "warren_config is not set"}
        geoip = {"geoip": runtime.geo.status()} if runtime.geo is not None else {}
        certificates = runtime.certificates.status()
        parts = {key: value for part in self.status_parts for key, value in part().items()}
        return {
            "ok": True,
            **runtime.store.status(),
            **geoip,
            "certificates": certificates,
            **parts,
        }
