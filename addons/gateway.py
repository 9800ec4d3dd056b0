"""`warren gateway`: the Warren pack in a mitmproxy master holding only what a reverse proxy needs.

mitmproxy hands every event to every addon in its chain. mitmdump's chain holds some thirty
default addons a gateway never uses (flow dumping, replay, interception, ...); this one holds
the proxy server, protocol detection, TLS, h2c refusal and Warren. Start-up errors are checked
as mitmdump does, and the checker then leaves the chain.
"""

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path

from mitmproxy import master, options
from mitmproxy.addons import disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig

from addons.failclosed import is_traffic
from addons.options import listen_modes
from addons.pack import warren_addons
from core.logs import setup_from_config
from core.notify import notify_ready


class _StartupErrorCheck(errorcheck.ErrorCheck):
    """mitmproxy's: the gateway exits when an error is logged while it starts (a bad file, a
    port taken). A request or connection that fails meanwhile (failclosed.TRAFFIC) is not that:
    it was answered or closed, and the gateway goes on starting."""

    name = "errorcheck"  # the master looks it up by this name

    def __init__(self) -> None:
        super().__init__()
        self.logger.addFilter(lambda record: not is_traffic(record))

    def finish(self) -> None:
        errorcheck.ErrorCheck.finish(self)
        self.master.addons.remove(self)

    def load(self, loader: object) -> None:
        from mitmproxy import ctx

        self.master = ctx.master


class GatewayMaster(master.Master):
    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts, with_termlog=False)
        self.addons.add(
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            disable_h2c.DisableH2C(),
            _StartupErrorCheck(),
            *warren_addons(),
        )

    async def running(self) -> None:
        await super().running()
        if (check := self.addons.get("errorcheck")) is not None:
            await check.shutdown_if_errored()  # a start that logged errors exits, never "ready"
        # What start-up built (mitmproxy, pydantic, the policy, the addons) lives as long as the
        # process. Frozen, the collector no longer walks it at every older-generation collection:
        # 7-11% more requests/s than an unfrozen gateway beside it (start-up's own garbage is
        # collected first, or it would be kept for good).
        gc.collect()
        gc.freeze()
        addresses = self.addons.get("proxyserver").listen_addrs()
        notify_ready("listening on " + ", ".join(f"{host}:{port}" for host, port, *_ in addresses))


async def _serve(config: Path, verbose: bool) -> int:
    settings = setup_from_config("gateway", config, verbose)  # core.logs: one format for all
    opts = options.Options()
    gateway = GatewayMaster(opts)
    mitm_dir = settings.state_dir / "mitmproxy"
    mitm_dir.mkdir(parents=True, exist_ok=True)
    opts.update(
        mode=listen_modes(settings),  # before the listeners start: no default proxy, ever
        confdir=str(mitm_dir),
        warren_config=str(config),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, gateway.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await gateway.run()
    return 0


def serve(config: Path, verbose: bool = False) -> int:
    return asyncio.run(_serve(config, verbose))


def optimised(argv: list[str]) -> None:
    """Re-run this command under `python -O` unless it already is.

    mitmproxy type-checks the fields of every HTTP message it builds while `__debug__` is on,
    several checks per request. Warren's own checks never rely on `assert`.
    """
    if sys.flags.optimize or os.environ.get("WARREN_NO_OPTIMIZE"):
        return
    os.execv(sys.executable, [sys.executable, "-O", "-m", "core", *argv])  # noqa: S606
