"""warren_config: loads warren.yaml and policy.yaml, and reloads the policy on request.

A reload is asked for by a change to the file, by SIGHUP, or by `warren reload` over the control
socket. A file that does not validate is refused and the last good policy keeps running.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import mode_specs

from addons.options import gateway_options
from addons.runtime import Runtime
from core import control
from core.policy.check import node_capabilities
from core.problems import ConfigError
from core.settings import load_settings
from core.store import PolicyStore
from core.watch import watch_file

log = logging.getLogger("warren.config")

OPTIONAL_TEXT = cast(type, str | None)  # mitmproxy's option API is typed as taking a class


async def _serve_modes(modes: list[str]) -> None:
    proxyserver = ctx.master.addons.get("proxyserver")
    if proxyserver is not None:
        await proxyserver.servers.update([mode_specs.ProxyMode.parse(mode) for mode in modes])


class Config:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[Any]] = set()
        self._control: asyncio.Server | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "warren_config", OPTIONAL_TEXT, None, "Path to warren.yaml (Warren's node settings)."
        )

    def configure(self, updated: set[str]) -> None:
        if "warren_config" not in updated or not ctx.options.warren_config:
            return
        try:
            settings = load_settings(Path(ctx.options.warren_config))
            store = PolicyStore(settings.policy_file, node_capabilities(settings))
        except ConfigError as error:
            raise exceptions.OptionsError(f"Warren cannot start:\n{error}") from None
        self.runtime.settings, self.runtime.store = settings, store
        wanted = {
            name: value
            for name, value in gateway_options(settings, list(ctx.options.mode)).items()
            if name in ctx.options  # a master without a proxy server (tests) lacks some
        }
        ctx.options.update(**wanted)
        if "mode" in wanted and ctx.master.addons.get("proxyserver") is not None:
            # mitmdump loads scripts after it has started its listeners with the default mode;
            # move them to Warren's at once rather than at the next mode change.
            self._spawn(_serve_modes(wanted["mode"]))
        log.info(
            "Warren: policy %s from %s (%d resources, %d rules)",
            store.current.digest,
            settings.policy_file,
            len(store.current.resources),
            store.current.rule_count,
        )

    async def running(self) -> None:
        settings, store = self.runtime.settings, self.runtime.store
        if settings is None or store is None:
            log.error("warren_config is not set: every request will be answered with 503")
            return
        interval = settings.reload_poll.total_seconds()
        self._spawn(
            watch_file(settings.policy_file, interval, lambda: store.reload_async(force=False))
        )
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._sighup)
        self._control = await control.serve(
            settings.control_path, {"reload": self._reload, "status": self._status}
        )

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._control is not None:
            self._control.close()
            settings = self.runtime.settings
            if settings is not None:
                settings.control_path.unlink(missing_ok=True)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sighup(self) -> None:
        if self.runtime.store is not None:
            self._spawn(self.runtime.store.reload_async())

    async def _reload(self) -> dict[str, Any]:
        assert self.runtime.store is not None
        return (await self.runtime.store.reload_async()).as_dict()

    async def _status(self) -> dict[str, Any]:
        store = self.runtime.store
        assert store is not None
        policy = store.current
        return {
            "ok": True,
            "policy": str(store.path),
            "digest": policy.digest,
            "resources": len(policy.resources),
            "rules": policy.rule_count,
            "reloads": store.reloads,
            "failed_reloads": store.failed_reloads,
            "last_error": store.last_error,
            **({"geoip": self.runtime.geo.status()} if self.runtime.geo is not None else {}),
        }
