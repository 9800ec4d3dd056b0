"""The Warren addon pack, in the order a request meets them."""

from addons.auth import Auth
from addons.clientip import ClientIp
from addons.config import Config
from addons.errorpages import ErrorPages
from addons.gate import Gate
from addons.health import Health
from addons.routing import Routing
from addons.rules import Rules
from addons.runtime import Runtime
from addons.upstream import Upstream


def warren_addons(runtime: Runtime | None = None) -> list[object]:
    runtime = runtime or Runtime()
    return [
        ErrorPages(),
        Config(runtime),
        ClientIp(runtime),
        Routing(),
        Rules(),
        Auth(),
        Upstream(runtime),
        Gate(),
        Health(runtime),
    ]
