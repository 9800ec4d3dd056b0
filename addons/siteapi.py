"""`/.warren/sites/` on any host of the node goes to the sidecar's registration API.

Sites register over the node's HTTPS address and certificate, so the sidecar opens no port of its
own. The request is routed like any other, through a resource Warren makes for it: the global
rules apply (a network the admin denies cannot register either), no sign-in (the secret is the
credential, checked by the sidecar), and the target is the sidecar's loopback listener. Only
while the policy has sites, and decided on the canonical path the rules see (`addons.routing`):
`/.warren/sites/../../x` is `/x`, an ordinary request to the host's resource.
"""

from core.policy.compiled import CompiledResource, Policy
from core.policy.model import Resource, Target
from core.policy.rules import RuleSet
from core.settings import Listen, Settings
from core.tunnels import SITE_API_PREFIX

NAME = ".warren-sites"  # cannot be a resource's name in policy.yaml


def sidecar_resource(api: Listen) -> CompiledResource:
    model = Resource(
        host=("sites.warren.invalid",),
        targets=(Target(host=api.host, port=api.port),),
        auth="public",
    )
    return CompiledResource(NAME, model, RuleSet(f"resources.{NAME}.rules", ()))


class SiteApi:
    """The sidecar's resource for a request whose canonical path is under the API's prefix."""

    def __init__(self) -> None:
        self._resource: CompiledResource | None = None
        self._api: Listen | None = None

    def resource_for(
        self, settings: Settings, policy: Policy, match_path: str
    ) -> CompiledResource | None:
        if not policy.model.sites or not match_path.startswith(SITE_API_PREFIX):
            return None
        if self._resource is None or self._api != settings.wireguard.api:
            self._api = settings.wireguard.api
            self._resource = sidecar_resource(self._api)
        return self._resource
