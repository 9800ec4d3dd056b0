"""Where the portal may send a browser after sign-in: only to a configured resource's host.

A target must be an absolute http(s) URL, written plainly: printable ASCII without spaces or
backslashes, no user information, a lower-case host name that a resource of the policy serves,
a port the gateway is reached on, and a path that starts with one slash. Anything else (the
open-redirect corpus in ../shared/testdata/open-redirects is hundreds of variations) is refused,
never repaired: a URL that needs repairing is an attack or a bug.
"""

import re
from typing import NamedTuple
from urllib.parse import urlsplit

from core.hosts import normalise_host
from core.policy.compiled import CompiledResource, Policy

_PLAIN = re.compile(r"^[\x21-\x7e]{1,2048}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectTarget(NamedTuple):
    scheme: str
    host: str  # lower-case, without port
    authority: str  # host[:port] as it goes into the URL
    path: str  # path and query
    resource: CompiledResource

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"

    @property
    def secure(self) -> bool:
        return self.scheme == "https"


def safe_target(
    candidate: str, policy: Policy, ports: frozenset[int], https_only: bool
) -> RedirectTarget | None:
    if not _PLAIN.match(candidate) or "\\" in candidate:
        return None
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or (https_only and parts.scheme != "https"):
        return None
    if not candidate.startswith(f"{parts.scheme}://") or "@" in parts.netloc:
        return None
    host = parts.hostname or ""
    if not _HOST.match(host) or normalise_host(parts.netloc) != host or host.isdigit():
        return None
    if port is not None and port not in ports and port != _DEFAULT_PORTS[parts.scheme]:
        return None
    expected_netloc = host if port is None else f"{host}:{port}"
    if parts.netloc != expected_netloc:
        return None  # upper case, a trailing dot, an empty port, ...
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return None
    resource = policy.resource_for(host)
    if resource is None or resource.model.protocol != "http":
        return None
    query = f"?{parts.query}" if parts.query else ""
    return RedirectTarget(parts.scheme, host, expected_netloc, path + query, resource)


def safe_local_path(candidate: str) -> str | None:
    """A path on the same host (a form's return address): one leading slash, plain ASCII."""
    if not _PLAIN.match(candidate) or "\\" in candidate:
        return None
    if not candidate.startswith("/") or candidate.startswith("//"):
        return None
    return candidate
