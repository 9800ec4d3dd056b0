"""The compiled, immutable policy the gateway decides with; reload swaps it in one assignment."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from types import MappingProxyType

from core.clientcerts import ClientCa
from core.clientip import ProxyTrust
from core.cloudflare import KNOWN
from core.forwarding import DEFAULT_STRIP
from core.headers import HeaderNames
from core.hosts import HostTable
from core.ipsets import IPNetwork
from core.policy.model import PolicyFile, Resource, ResourceAuth, Target
from core.policy.routes import RouteTable
from core.policy.rules import Facts, RuleSet, Verdict, evaluate
from core.ratelimit.compiled import GLOBAL_SCOPE, CompiledLimit, compile_limits


@dataclass(frozen=True, slots=True)
class CompiledResource:
    name: str
    model: Resource
    rules: RuleSet
    # Every limit its requests (or, for tcp/udp, its connections) count against: the global
    # ones first for http resources, then its own.
    rate_limits: tuple[CompiledLimit, ...] = ()
    # auth.client_ca read (core.policy.load); None without one, or when compiled from a model
    # alone, which then signs no certificate in (fail closed).
    client_ca: ClientCa | None = None
    routes: RouteTable = field(default_factory=lambda: RouteTable("routes", ()))

    @property
    def targets(self) -> tuple[Target, ...]:
        """For the paths no route matches (all of them, without routes)."""
        return self.model.targets

    @property
    def every_target(self) -> tuple[Target, ...]:
        return self.model.every_target()

    @property
    def public(self) -> bool:
        # The str test first: `==` on a ResourceAuth would run pydantic's __eq__ per request.
        auth = self.model.auth
        return isinstance(auth, str) and auth == "public"

    @property
    def auth(self) -> ResourceAuth | None:
        auth = self.model.auth
        return auth if isinstance(auth, ResourceAuth) else None


@dataclass(frozen=True, slots=True)
class Policy:
    model: PolicyFile
    source: Path | None
    digest: str
    trust: ProxyTrust
    global_rules: RuleSet
    resources: Mapping[str, CompiledResource]
    hosts: HostTable[CompiledResource] = field(repr=False)
    # Whether any rule asks for the client's country / AS number: when neither, the gateway
    # never looks an address up.
    uses_country: bool = False
    uses_asn: bool = False

    @property
    def uses_geo(self) -> bool:
        return self.uses_country or self.uses_asn

    rate_limits: tuple[CompiledLimit, ...] = ()  # the global ones
    strip: HeaderNames = field(default_factory=lambda: HeaderNames(DEFAULT_STRIP))

    def resource_for(self, authority: str) -> CompiledResource | None:
        return self.hosts.lookup(authority)

    def decide(self, resource: CompiledResource, facts: Facts) -> Verdict:
        return evaluate((self.global_rules, resource.rules), facts)

    @property
    def rule_count(self) -> int:
        return len(self.global_rules) + sum(len(r.rules) for r in self.resources.values())


def compile_policy(
    model: PolicyFile,
    source: Path | None = None,
    digest: str = "",
    cloudflare: tuple[IPNetwork, ...] = KNOWN,
    client_cas: Mapping[str, ClientCa] = MappingProxyType({}),
) -> Policy:
    """`cloudflare`: the node's copy of Cloudflare's networks (`trusted_proxies: [cloudflare]`);
    `client_cas`: each resource's auth.client_ca, read, by resource name."""
    global_limits = compile_limits("rate_limits", GLOBAL_SCOPE, model.rate_limits)
    resources = {
        name: CompiledResource(
            name,
            resource,
            RuleSet(f"resources.{name}.rules", resource.rules),
            (global_limits if resource.protocol == "http" else ())
            + compile_limits(f"resources.{name}.rate_limits", name, resource.rate_limits),
            client_cas.get(name),
            RouteTable(f"resources.{name}.routes", resource.routes),
        )
        for name, resource in model.resources.items()
    }
    every_rule = [*model.rules, *(rule for r in model.resources.values() for rule in r.rules)]
    networks: list[IPNetwork] = [
        ip_network(entry) for entry in model.trusted_proxies if entry != "cloudflare"
    ]
    return Policy(
        model=model,
        source=source,
        digest=digest,
        trust=ProxyTrust(networks, cloudflare if "cloudflare" in model.trusted_proxies else ()),
        global_rules=RuleSet("rules", model.rules),
        resources=MappingProxyType(resources),
        hosts=HostTable(
            (host, compiled)
            for compiled in resources.values()
            if compiled.model.protocol == "http"
            for host in compiled.model.host or ()
        ),
        uses_country=any(r.uses_country() for r in every_rule),
        uses_asn=any(r.asn is not None for r in every_rule),
        rate_limits=global_limits,
        strip=HeaderNames(model.strip_headers),
    )
