"""`warren gateway`: the Warren pack in a mitmproxy master holding only what a reverse proxy needs.

mitmdump loads some thirty default addons that a gateway never uses (flow dumping, replay,
interception, ...) and each is called on every event. Leaving them out is most of the speed-up.
"""

import asyncio
import logging
import signal
from pathlib import Path

from mitmproxy import master, options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig

from addons.options import reverse_mode
from addons.pack import warren_addons
from core.settings import load_settings


class GatewayMaster(master.Master):
    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts, with_termlog=True)
        self.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            disable_h2c.DisableH2C(),
            errorcheck.ErrorCheck(),
            *warren_addons(),
        )


async def _serve(config: Path, verbosity: str) -> int:
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("asyncio", "hpack", "h2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if verbosity != "debug":  # a line per connection drowns out Warren's own decisions
        logging.getLogger("mitmproxy.proxy.server").setLevel(logging.WARNING)
    settings = load_settings(config)
    opts = options.Options()
    gateway = GatewayMaster(opts)
    mitm_dir = settings.state_dir / "mitmproxy"
    mitm_dir.mkdir(parents=True, exist_ok=True)
    opts.update(
        mode=[reverse_mode(settings)],  # before the listeners start: no default proxy, ever
        confdir=str(mitm_dir),
        termlog_verbosity=verbosity,
        warren_config=str(config),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, gateway.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await gateway.run()
    return 0


def serve(config: Path, verbosity: str = "info") -> int:
    return asyncio.run(_serve(config, verbosity))
