"""State the Warren addons share, filled in by `addons.config.Config`."""

from dataclasses import dataclass, field

from addons.signin import SignIn
from core.balance import Upstreams
from core.ipsets import IPAddress
from core.policy.compiled import Policy
from core.ratelimit.limiter import RateLimiter
from core.settings import Settings
from core.store import PolicyStore
from core.tunnels import SiteTable
from geodb.service import GeoService


@dataclass(slots=True)
class Runtime:
    settings: Settings | None = None
    store: PolicyStore | None = None
    upstreams: Upstreams = field(default_factory=Upstreams)
    geo: GeoService | None = None  # filled in by addons.geo.Geo when warren.yaml names databases
    sites: SiteTable = field(default_factory=SiteTable)  # from the sidecar's sites.json
    rate_limiter: RateLimiter | None = None  # counts in settings.storage; made by RateLimit
    signin: SignIn | None = None  # keys, shared state and token cache; see addons.identify

    @property
    def policy(self) -> Policy | None:
        return self.store.current if self.store is not None else None

    def place(self, policy: Policy, ip: IPAddress) -> tuple[str | None, int | None]:
        """The client's country and AS number, looked up only if this policy's rules ask for
        them (unknown otherwise, which lets no one in by accident: see core.policy.rules)."""
        geo = self.geo
        if not policy.uses_geo or geo is None:
            return None, None
        country = geo.country(ip) if policy.uses_country else None
        asn = geo.asn(ip) if policy.uses_asn else None
        return country, asn
