"""Which way a link's WireGuard packets go: UDP to the node's WireGuard port, or the TCP/443
fallback (sidecar.streamlink), decided from WireGuard's own handshakes (UAPI's
last_handshake), never from a probe of Warren's own.

- On UDP, a new session that completes no handshake within `fallback_after` seconds moves the
  link to the stream. A tunnel that dies later gets a new session when the link registers again
  (sidecar.nodelink), so a network that starts blocking UDP is caught the same way.
- On the stream, every `retry_udp` seconds (jittered, backing off to ten times that while UDP
  stays blocked) the link tries UDP again: a new session there, the stream kept open meanwhile.
  A handshake over UDP within `fallback_after` keeps UDP and the stream is closed; none, and
  the link goes back to the stream until the next try. A try costs the tunnel at most
  `fallback_after` seconds of traffic.

A handshake counts for a way only when WireGuard reports the peer's endpoint as that way's:
WireGuard roams to wherever authenticated packets come from.
"""

import time
from collections.abc import Callable
from typing import Literal

from sidecar.backoff import Backoff

type Way = Literal["udp", "tcp"]


class TransportChoice:
    def __init__(
        self,
        fallback_after: float,
        retry_udp: float,
        clock: Callable[[], float] = time.time,  # UAPI's handshake times are the epoch's
        backoff: Backoff | None = None,
    ) -> None:
        self.fallback_after = fallback_after
        self.clock = clock
        self.way: Way = "udp"
        self.trying_udp = False  # on UDP for a try, the stream still open behind it
        self.retry = backoff or Backoff(initial=retry_udp, maximum=10 * retry_udp)
        self._waiting_since: float | None = None  # a session with no handshake yet
        self._next_try = 0.0

    @property
    def needs_stream(self) -> bool:
        return self.way == "tcp" or self.trying_udp

    def new_session(self) -> None:
        """The link's WireGuard starts a new session on the current way. An earlier one still
        waiting keeps its start: registering again must not reset the count."""
        if self._waiting_since is None:
            self._waiting_since = self.clock()

    def decide(self, handshake: float | None) -> Way | None:
        """The way to move to, or None to stay. `handshake`: the last handshake's time, when the
        peer's endpoint is the current way's (else None)."""
        now = self.clock()
        waiting = self._waiting_since
        if waiting is not None and handshake is not None and handshake >= waiting:
            self._waiting_since = None
            if self.trying_udp:
                self.trying_udp = False  # UDP works again: the stream can go
                self.retry.reset()
        if self.way == "udp":
            if self._waiting_since is not None and now - self._waiting_since >= self.fallback_after:
                self.way, self.trying_udp, self._waiting_since = "tcp", False, None
                self._next_try = now + self.retry.next()
                return "tcp"
            return None
        if now >= self._next_try:
            self.way, self.trying_udp, self._waiting_since = "udp", True, None
            return "udp"
        return None
