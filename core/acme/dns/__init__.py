"""The DNS providers DNS-01 can use, by the name `acme.dns.provider` gives (the way `limits`
keeps its storage back ends: the abstract type in `base`, one module per provider, one registry
here). A new provider: its module, its options in `DnsSettings`, its class in `PROVIDERS`."""

from core.acme.dns.base import DnsError, DnsOptions, DnsProvider
from core.acme.dns.cloudflare import Cloudflare, CloudflareOptions

# Each member's `provider` Literal tells pydantic which one a warren.yaml section is.
type DnsSettings = CloudflareOptions

PROVIDERS: dict[str, type[DnsProvider]] = {Cloudflare.name: Cloudflare}


def open_provider(options: DnsOptions) -> DnsProvider:
    return PROVIDERS[options.provider](options)


__all__ = ["PROVIDERS", "DnsError", "DnsOptions", "DnsProvider", "DnsSettings", "open_provider"]
