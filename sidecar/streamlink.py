"""The site's end of the TCP/443 fallback: a local UDP socket that the link's WireGuard peer
points at (127.0.0.1:P, owned by the agent), and a WebSocket to the node's
`/.warren/sites/tunnel` through its HTTPS address, with the datagrams relayed between them
(sidecar.streamrelay).

The stream is kept open for as long as the link is on the fallback: when it drops, it is made
again with jittered backoff (sidecar.backoff), as registration is, for as long as it takes.
WireGuard sends its datagrams to the socket whether the stream is up or not: what arrives while
it is down is lost, as on a network that is down, and WireGuard's own retries carry on.
"""

import asyncio
import contextlib
import logging

import aiohttp

from core.tunnels import TUNNEL_PATH
from sidecar.backoff import Backoff
from sidecar.streamnode import HEARTBEAT, SITE_PARAMETER
from sidecar.streamrelay import Datagrams, open_datagrams, pump

log = logging.getLogger("warren.site")

CONNECT_TIMEOUT = 10.0  # seconds for TCP, TLS and the upgrade, as registration allows


class StreamLink:
    def __init__(self, url: str, site: str, secret: str, label: str) -> None:
        self.url = url.rstrip("/") + TUNNEL_PATH
        self.params = {SITE_PARAMETER: site}
        self.headers = {"authorization": f"Bearer {secret}"}
        self.label = label
        self.connected = False
        # False while the link tries UDP: the node's WireGuard, not hearing from the site's new
        # session, starts handshakes of its own through the stream; answered, they would pull
        # both ends back onto it (WireGuard roams to wherever authenticated packets come from)
        # and no try could ever succeed. Dropped, they leave UDP's handshake the only one.
        self.deliver = True
        self.backoff = Backoff()
        self._datagrams: Datagrams | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        """Where the link's WireGuard sends: the agent's own socket on loopback."""
        assert self._datagrams is not None, "start() first"
        host, port = self._datagrams.sockname
        return f"{host}:{port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        if self._task is not None:
            return
        self._datagrams = await open_datagrams(("127.0.0.1", 0))
        self._task = asyncio.get_running_loop().create_task(self._keep(http))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._datagrams is not None:
            self._datagrams.close()
            self._datagrams = None
        self.connected = False

    def _destination(self, datagrams: Datagrams) -> tuple[str, int] | None:
        """The local WireGuard's socket, as its datagrams came from; None: drop."""
        return datagrams.source if self.deliver else None

    async def _keep(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self._once(http)
                why = "the node closed it"
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                why = repr(error)
            self.connected = False
            delay = self.backoff.next()
            log.warning("%s: the TCP/443 stream: %s; again in %.1fs", self.label, why, delay)
            await asyncio.sleep(delay)

    async def _once(self, http: aiohttp.ClientSession) -> None:
        datagrams = self._datagrams
        assert datagrams is not None
        connecting = http.ws_connect(
            self.url,
            headers=self.headers,
            params=self.params,
            heartbeat=HEARTBEAT,
            compress=0,  # WireGuard's packets are ciphertext: deflate would only cost
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5),
            max_msg_size=1 << 20,
        )
        async with await asyncio.wait_for(connecting, CONNECT_TIMEOUT) as ws:
            self.connected = True
            self.backoff.reset()
            log.info("%s: carrying WireGuard over TCP/443 (%s)", self.label, self.url)
            with contextlib.suppress(ConnectionError):
                await pump(ws, datagrams, lambda: self._destination(datagrams))
