"""`warren site`: the site agent process."""

import asyncio
import contextlib
import logging
import resource

from sidecar.agent import AgentOptions, SiteAgent
from sidecar.running import setup_logging, stop_event

log = logging.getLogger("warren.site")


async def _run(options: AgentOptions) -> int:
    agent = SiteAgent(options)
    stop = stop_event()
    work = asyncio.create_task(agent.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stopping):
            task.cancel()
        agent.close()
    if work.done() and not work.cancelled() and work.exception() is not None:
        log.error("the site agent failed", exc_info=work.exception())
        return 1
    return 0


def raise_file_limit() -> None:
    """Each forwarded TCP connection holds two descriptors; the usual soft limit of 1024 would
    cap the agent near 500 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(options: AgentOptions, verbose: bool = False) -> int:
    setup_logging(verbose)
    raise_file_limit()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(options))
    return 0
