"""What both long-running sidecar processes need: logging, and stopping on a signal."""

import asyncio
import logging
import signal
import sys


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("asyncio", "aiohttp.access", "pyroute2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or SIGINT. (SIGHUP, where a process reloads, is core.reloading's.)"""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
