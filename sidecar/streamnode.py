"""The node's end of the TCP/443 fallback: `GET /.warren/sites/tunnel`, a WebSocket a site's
agent opens through the gateway's HTTPS listener when its network blocks UDP (RFC 6455; the
gateway carries the upgrade on to this loopback API like the registration's requests).

It is authenticated like registration (`Authorization: Bearer <secret>`, the site named in
the query, `?site=NAME`), before the upgrade: a refused caller gets 401 and no socket. Each accepted
stream gets a UDP socket of its own, connected to the node's WireGuard port on loopback, and
the relay (sidecar.streamrelay) carries the framed datagrams between them. The node's WireGuard
so sees the site's endpoint as that socket and needs nothing else; it stays the only
encryption and authentication of the packets themselves. A site's newer stream replaces its
older one.
"""

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from core.logs import event
from sidecar.apirules import bearer, refuse
from sidecar.streamrelay import open_datagrams, pump

log = logging.getLogger("warren.sidecar")

SITE_PARAMETER = "site"  # in the query: the gateway keeps X-Warren-* headers for its own
HEARTBEAT = 15.0  # WebSocket pings: a dead TCP connection is found without waiting for the OS

type Check = Callable[[str, str], bool]  # site, secret: registered under that secret


class Streams:
    """The sites on a stream now: site -> the local address the node's WireGuard sees."""

    def __init__(self, check: Check, wireguard_port: int) -> None:
        self.check = check
        self.wireguard_port = wireguard_port
        self.endpoints: dict[str, str] = {}
        self._current: dict[str, web.WebSocketResponse] = {}

    def transport_of(self, site: str, endpoint: str | None) -> str:
        return "tcp" if endpoint is not None and self.endpoints.get(site) == endpoint else "udp"

    def keep_only(self, sites: set[str]) -> None:
        """Close the streams of sites the policy no longer has (or has under another secret):
        their peers are going, and nothing they send should reach the node's WireGuard."""
        for site in set(self._current) - sites:
            asyncio.get_running_loop().create_task(self._current[site].close())

    async def close_all(self, _app: web.Application | None = None) -> None:
        """At shutdown (aiohttp's on_shutdown): the streams end now, not at its timeout."""
        for ws in list(self._current.values()):
            await ws.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        caller = request.headers.get("x-forwarded-for") or request.remote or "?"
        site = request.query.get(SITE_PARAMETER, "")
        secret = bearer(request.headers.get("authorization", ""))
        if secret is None or not site or not self.check(site, secret):
            event(
                log,
                "site-stream-refused",
                site=site,
                client=caller,
                reason="unknown site or wrong secret",
                level=logging.WARNING,
            )
            return refuse(401, "unknown site or wrong secret")
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT,
            max_msg_size=1 << 20,
            compress=False,  # ciphertext does not compress; never negotiate permessage-deflate
        )
        await ws.prepare(request)
        await self._serve(site, caller, ws)
        return ws

    async def _serve(self, site: str, caller: str, ws: web.WebSocketResponse) -> None:
        older = self._current.pop(site, None)
        if older is not None:
            await older.close()
        datagrams = await open_datagrams(("127.0.0.1", 0), ("127.0.0.1", self.wireguard_port))
        host, port = datagrams.sockname
        self._current[site] = ws
        self.endpoints[site] = f"{host}:{port}"
        event(log, "site-stream-open", site=site, client=caller, endpoint=f"{host}:{port}")
        try:
            await pump(ws, datagrams)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            datagrams.close()
            if self._current.get(site) is ws:
                del self._current[site]
                del self.endpoints[site]
            event(log, "site-stream-closed", site=site, dropped=datagrams.dropped)
