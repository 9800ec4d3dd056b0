"""State the Warren addons share, filled in by `addons.config.Config`."""

from dataclasses import dataclass, field

from addons.signin import SignIn
from core.balance import Upstreams
from core.policy.compiled import Policy
from core.settings import Settings
from core.store import PolicyStore


@dataclass(slots=True)
class Runtime:
    settings: Settings | None = None
    store: PolicyStore | None = None
    upstreams: Upstreams = field(default_factory=Upstreams)
    signin: SignIn | None = None  # keys, shared state and token cache; see addons.identify

    @property
    def policy(self) -> Policy | None:
        return self.store.current if self.store is not None else None
