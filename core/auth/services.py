"""What the gateway and the portal both sign people in with, made one way from warren.yaml:
the signing keys, the shared sign-in state, users.yaml as it is now, and the regulation of
failed sign-ins. Each process adds its own on top (the gateway its token cache, the portal its
pages)."""

from dataclasses import dataclass

from core.auth.regulation import Regulation, open_regulation
from core.auth.signing import KeyRing
from core.auth.signinstate import KeyValue, RedisKV, open_kv
from core.auth.tokens import issuer_for
from core.auth.users import UsersSource
from core.cluster.keys import PublishedKeys
from core.settings import Settings
from core.storage import is_shared

# How stale the gateway's view of users.yaml may get: removing someone from a group or disabling
# them counts within this (or reload_poll, when shorter). The gateway asks on every request; the
# portal, which asks only on a sign-in, looks at the file every time (recheck 0), so someone just
# added by `warren user add` can sign in at once.
USERS_RECHECK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class SignInServices:
    issuer: str  # every Warren token's `iss`: public_url
    keys: KeyRing  # state_dir/keys
    kv: KeyValue  # sessions, revocations, one-time codes: SQLite or Redis (settings.storage)
    users: UsersSource
    regulation: Regulation
    published: PublishedKeys | None = None  # with shared storage: the other nodes' keys

    @classmethod
    def open(cls, settings: Settings, *, users_on_every_use: bool = False) -> "SignInServices":
        keys = KeyRing(settings.state_dir / "keys")
        keys.ensure()
        published = None
        if is_shared(settings.storage):
            published = keys.published = PublishedKeys(settings.storage, settings.node_name)
        recheck = (
            0.0
            if users_on_every_use
            else min(USERS_RECHECK_SECONDS, settings.reload_poll.total_seconds())
        )
        return cls(
            issuer=issuer_for(settings.public_url),
            keys=keys,
            kv=open_kv(settings.storage, settings.state_dir, settings.session.on_storage_error),
            users=UsersSource(settings.users_file, recheck),
            regulation=open_regulation(settings.storage, settings.regulation),
            published=published,
        )

    async def start(self) -> None:
        """In a server's event loop: the other nodes' keys, read once and then followed; and
        revocations followed from now, so a node idle since it started still has a copy to
        decide by if storage goes away (session.on_storage_error: last_known)."""
        if isinstance(self.kv, RedisKV):
            self.kv.follow()
        if self.published is not None:
            await self.published.start()

    async def close(self) -> None:
        await self.kv.close()
        if self.published is not None:
            await self.published.close()


class OnSignInServices:
    """For what is built on the services (the gateway's SignIn, the portal's Portal): their
    parts by name, so callers say `signin.kv`, not `signin.services.kv`."""

    __slots__ = ()
    services: SignInServices

    @property
    def keys(self) -> KeyRing:
        return self.services.keys

    @property
    def kv(self) -> KeyValue:
        return self.services.kv

    @property
    def users(self) -> UsersSource:
        return self.services.users

    @property
    def regulation(self) -> Regulation:
        return self.services.regulation
