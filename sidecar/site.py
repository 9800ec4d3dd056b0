"""`warren site`: the site agent process."""

import asyncio
import contextlib
import logging

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


def serve(options: AgentOptions, verbose: bool = False) -> int:
    setup_logging(verbose)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(options))
    return 0
