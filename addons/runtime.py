"""The gateway's services, built together from warren.yaml in one place (`build_runtime`) and
swapped whole (`RuntimeSlot`): the policy store, the certificates, sign-in, the rate limiter,
GeoIP, the targets' balance and health, the sites' tunnels. Every request is decided by the
runtime it started with.

Order matters only here: what a service needs is passed to it when it is made.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addons.signin import SignIn
from core.balance import Upstreams
from core.certs import NodeCertificates
from core.cluster.peers import Peers
from core.geo import GeoSource, open_geo
from core.health import HealthMonitor
from core.ipsets import IPAddress
from core.policy.check import node_capabilities
from core.policy.compiled import Policy
from core.policy.limitchecks import located_warnings
from core.policy.store import PolicyStore, ReloadResult
from core.problems import ConfigError
from core.ratelimit.limiter import RateLimiter
from core.settings import Settings, load_settings
from core.sites import OfflineListener, SiteRoutes
from core.storage import is_shared
from core.tunnels import sites_file

log = logging.getLogger("warren.config")


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Path
    settings: Settings
    store: PolicyStore
    certificates: NodeCertificates
    signin: SignIn
    limiter: RateLimiter  # counts in settings.storage
    geo: GeoSource | None  # when warren.yaml names databases
    upstreams: Upstreams
    sites: SiteRoutes
    health: HealthMonitor
    peers: Peers | None = None  # with shared storage: the other nodes, for relaying
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def policy(self) -> Policy:
        return self.store.current

    def geo_facts(self, policy: Policy, ip: IPAddress) -> tuple[str | None, int | None]:
        """The client's country and AS number, looked up only if this policy's rules ask for
        them; None when unknown, which the rules read as XX / AS0 (core.policy.rules)."""
        geo = self.geo
        if not policy.uses_geo or geo is None:
            return None, None
        country = geo.country(ip) if policy.uses_country else None
        asn = geo.asn(ip) if policy.uses_asn else None
        return country, asn

    async def reload(self, *, force: bool) -> "NodeReload":
        """What `warren reload`, SIGHUP and a changed file ask for: the certificates, then the
        policy; each keeps its last good state when its files do not load."""
        await asyncio.to_thread(self.certificates.refresh, force)
        try:
            capabilities = await asyncio.to_thread(node_capabilities, self.settings)
        except ConfigError as error:  # the node's own files (Cloudflare's ranges): keep the last
            log.error("%s; the policy keeps what the node was", error)
            capabilities = None
        policy = await self.store.reload_async(force=force, capabilities=capabilities)
        return NodeReload(policy, self.certificates.errors)

    async def start(self) -> None:
        """What keeps the services current: the sites' and GeoIP files, health checks, and the
        policy's listeners. (The policy file itself: addons.config.)"""
        interval = self.settings.reload_poll.total_seconds()
        await self.signin.services.start()  # other nodes' keys, before the first request
        self.store.subscribe(self._policy_changed)
        self.health.update(self.policy)
        self._spawn(self.sites.watch(interval))
        if self.peers is not None:
            self.peers.start()
        if self.geo is not None:
            self._spawn(self.geo.watch(interval))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.health.stop()
        if self.peers is not None:
            await self.peers.close()
        await self.signin.services.close()
        await self.limiter.close()

    def _policy_changed(self, policy: Policy) -> None:
        self.sites.apply(policy)
        self.health.update(policy)
        self._log_warnings(policy)

    def _log_warnings(self, policy: Policy) -> None:
        _log_warnings(policy, sign_in=self.store.capabilities.sign_in)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))


def build_runtime(config: Path, *, on_site_offline: OfflineListener) -> Runtime:
    """Raises core.problems.ConfigError for a warren.yaml or policy.yaml that does not validate."""
    settings = load_settings(config)
    store = PolicyStore(settings.policy_file, node_capabilities(settings))
    upstreams = Upstreams()
    sites = SiteRoutes(sites_file(settings.state_dir), upstreams, on_site_offline)
    sites.read()
    sites.apply(store.current)  # routable before the first request, which may come before start
    certificates = _certificates(settings, config)
    signin = SignIn.from_settings(settings)
    _warn_without_portal(signin, store.current)
    _log_warnings(store.current, sign_in=store.capabilities.sign_in)
    return Runtime(
        config=config,
        settings=settings,
        store=store,
        certificates=certificates,
        signin=signin,
        limiter=RateLimiter(settings.storage),
        geo=_opened(open_geo(settings.geoip, config)),
        upstreams=upstreams,
        sites=sites,
        health=HealthMonitor(upstreams, resolve=sites.resolve),
        peers=Peers(settings.storage, settings.node_name) if is_shared(settings.storage) else None,
    )


def _certificates(settings: Settings, config: Path) -> NodeCertificates:
    admin = [(files.cert, files.key) for files in settings.certs]
    return NodeCertificates.open(admin, settings.state_dir, source=config)


@dataclass(frozen=True, slots=True)
class NodeReload:
    """A reload's outcome as `warren reload` reads it: the policy's, and any certificate file
    that did not load (the certificate before it is still served)."""

    policy: ReloadResult
    certificate_errors: dict[Path, str]

    def as_dict(self) -> dict[str, object]:
        reply = self.policy.as_dict()
        if self.certificate_errors:
            reply["ok"] = False
            errors = "\n".join(self.certificate_errors.values())
            reply["error"] = "\n".join(e for e in (self.policy.error, errors) if e)
        return reply


def _opened(geo: GeoSource | None) -> GeoSource | None:
    for line in geo.opened() if geo is not None else ():
        logging.getLogger("warren.geodb").info("geoip %s", line)
    return geo


def _log_warnings(policy: Policy, *, sign_in: bool) -> None:
    # What `warren check` warns about, for admins who only read the gateway's log.
    for warning in located_warnings(policy.model, policy.source, sign_in=sign_in):
        logging.getLogger("warren.ratelimit").warning("%s", warning)


def _warn_without_portal(signin: SignIn, policy: Policy) -> None:
    if signin.portal_host and not policy.resource_for(signin.portal_host):
        log.warning(
            "public_url is %s, but no resource in the policy serves %s: browsers sent to sign "
            "in will get 404 (add the portal as a resource, see the README's Sign-in)",
            signin.portal_url,
            signin.portal_host,
        )


class RuntimeSlot:
    """Where the running Runtime is: None until warren_config is set, then swapped whole."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self._listeners: list[Callable[[Runtime], None]] = []

    def on_swap(self, listener: Callable[[Runtime], None]) -> None:
        self._listeners.append(listener)

    def swap(self, runtime: Runtime) -> Runtime | None:
        """Put `runtime` in place, tell the listeners; the one it replaces, for closing."""
        before, self.runtime = self.runtime, runtime
        for listener in self._listeners:
            listener(runtime)
        return before
