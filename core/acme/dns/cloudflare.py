"""Cloudflare's API v4 as a DNS-01 provider: the zone found by name, a TXT record created under
`_acme-challenge.` and deleted by its id afterwards.

The API token (a Cloudflare API token allowed Zone:Read and DNS:Edit on the zone) is read from
`api_token_file` each time records are made, so a rotated token is picked up without a restart.
"""

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator

from core.acme.dns.base import DnsError, DnsOptions, DnsProvider

if TYPE_CHECKING:
    import httpx

API_URL = "https://api.cloudflare.com/client/v4"


def _api_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not a URL like {API_URL}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("the API token would travel in clear text: use https")
    return value.rstrip("/")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class CloudflareOptions(DnsOptions):
    provider: Literal["cloudflare"]
    api_token_file: Path
    api_url: Annotated[str, AfterValidator(_api_url)] = API_URL


class Cloudflare(DnsProvider):
    name = "cloudflare"
    options: CloudflareOptions

    def __init__(self, options: CloudflareOptions) -> None:
        super().__init__(options)
        self._client: httpx.AsyncClient | None = None
        self._zones: dict[str, str] = {}

    async def add_txt(self, record: str, value: str) -> str:
        zone = await self._zone_of(record)
        created = await self._call(
            "POST",
            f"/zones/{zone}/dns_records",
            json={"type": "TXT", "name": record, "content": value, "ttl": 60},
        )
        return f"{zone}/{created['id']}"

    async def remove_txt(self, handle: str) -> None:
        zone, _, record = handle.partition("/")
        await self._call("DELETE", f"/zones/{zone}/dns_records/{record}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _zone_of(self, record: str) -> str:
        """The most specific zone holding `record`: `_acme-challenge.a.example.com` may be in
        `a.example.com` or in `example.com`."""
        labels = record.removeprefix("_acme-challenge.").split(".")
        for start in range(len(labels) - 1):
            name = ".".join(labels[start:])
            if name not in self._zones:
                found = await self._call("GET", "/zones", params={"name": name})
                if not found:
                    continue
                self._zones[name] = str(found[0]["id"])
            return self._zones[name]
        raise DnsError(f"no Cloudflare zone this API token can see holds {record}")

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        client = self._client or self._open()
        try:
            response = await client.request(
                method, path, headers={"authorization": f"Bearer {self._token()}"}, **kwargs
            )
        except httpx.HTTPError as error:
            raise DnsError(f"Cloudflare API at {self.options.api_url}: {error!r}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.is_success and answer.get("success", False):
            return answer.get("result")
        errors = "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in answer.get("errors") or () if e
        )
        raise DnsError(
            f"Cloudflare API {method} {path}: HTTP {response.status_code} {errors}".rstrip()
        )

    def _open(self) -> "httpx.AsyncClient":
        import httpx  # only a gateway that orders wildcards pays for importing it

        self._client = httpx.AsyncClient(base_url=self.options.api_url, timeout=30)
        return self._client

    def _token(self) -> str:
        path = self.options.api_token_file
        try:
            token = path.read_text().strip()
        except OSError as error:
            raise DnsError(f"acme.dns.api_token_file: {path}: {error.strerror}") from None
        if not token:
            raise DnsError(f"acme.dns.api_token_file: {path} is empty")
        return token
