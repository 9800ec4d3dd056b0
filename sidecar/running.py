"""What both long-running sidecar processes need: logging, and stopping on a signal."""

import asyncio
import signal
from pathlib import Path

from core import logs
from core.logs import setup_from_config
from core.settings import Settings


def setup_logging(
    verbose: bool, component: str = "site", config: Path | None = None
) -> Settings | None:
    """core.logs' one format: warren.yaml's `logging.format` when there is a config (the
    sidecar's; its Settings are returned), `auto` for the site agent, which has none."""
    if config is not None:
        return setup_from_config(component, config, verbose)
    logs.setup_logging(component, "auto", verbose)
    return None


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or SIGINT. (SIGHUP, where a process reloads, is core.reloading's.)"""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
