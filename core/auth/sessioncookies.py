"""The session a request's Cookie header carries, remembered by the header's text.

A browser sends the same Cookie header with every request. Finding the session cookie in it,
its verified token (`core.auth.verifier`) and the person as users.yaml says now
(`core.auth.users.current_identity`) comes out the same each time, so it is done once per header
and reused until the token expires, users.yaml changes or the keys Warren trusts change. Whether
the sign-in was revoked is never remembered: it is asked of the shared state on every request,
with the keys to ask for (`core.auth.sessions.revocation_keys`) made once.
"""

import logging
import time
from collections import OrderedDict
from typing import NamedTuple

from core.auth import cookies, sessions
from core.auth.identity import Identity
from core.auth.signinstate import KeyValue
from core.auth.tokens import TokenError
from core.auth.users import UsersFile, UsersSource, current_identity
from core.auth.verifier import Verifier

log = logging.getLogger("warren.auth")

# Longer headers are read afresh each time: remembering them could hold a lot of memory.
REMEMBERED_HEADER_CHARACTERS = 4096


class _Session(NamedTuple):
    identity: Identity
    revocation_keys: tuple[str, ...]
    users_generation: int
    keys_generation: int


class SessionCookies:
    def __init__(self, verifier: Verifier, users: UsersSource, max_entries: int = 4096) -> None:
        self._verifier = verifier
        self._users = users
        self._max = max_entries
        self._known: OrderedDict[tuple[str, str, str], _Session] = OrderedDict()

    async def identity(self, kv: KeyValue, header: str, name: str, host: str) -> Identity | None:
        """Who the cookie `name` in `header` signs in on `host`, or None: no such cookie, a
        token that is not good here, an account deleted or disabled, or a revoked sign-in."""
        users = self._users.current()  # first: it may notice a change and move the generation on
        key = (header, name, host)
        session = self._known.get(key)
        if session is None or not self._current(session):
            session = await self._read(users, header, name, host)
            if session is None:
                return None
            if len(header) <= REMEMBERED_HEADER_CHARACTERS:
                self._remember(key, session)
        identity = session.identity
        found = await kv.get_many(session.revocation_keys) if session.revocation_keys else {}
        revoked = found and sessions.is_revoked(
            found, identity.session_id, identity.user, identity.issued_at
        )
        return None if revoked else identity

    def _current(self, session: _Session) -> bool:
        return (
            session.identity.expires > time.time()
            and session.users_generation == self._users.generation
            and session.keys_generation == self._verifier.keys.generation
        )

    async def _read(self, users: UsersFile, header: str, name: str, host: str) -> _Session | None:
        token = cookies.read_cookie(header, name)
        if token is None:
            return None
        try:
            signed = (await self._verifier.check_known(token, "session", host)).identity
        except TokenError as error:
            log.debug("session cookie refused on %s: %s", host, error)
            return None
        # Who the person is now decides, not the groups frozen into the token.
        identity = current_identity(users, signed)
        if identity is None:
            log.debug("session of %s refused: deleted or disabled", signed.subject)
            return None
        keys = tuple(sessions.revocation_keys(identity.session_id, identity.user))
        return _Session(identity, keys, self._users.generation, self._verifier.keys.generation)

    def _remember(self, key: tuple[str, str, str], session: _Session) -> None:
        self._known[key] = session
        if len(self._known) > self._max:
            self._known.popitem(last=False)
