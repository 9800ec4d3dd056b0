"""What a DNS provider does for DNS-01 (RFC 8555 §8.4): put a TXT record under
`_acme-challenge.<name>` and take it away again. One provider per module beside this one; the
registry is `core.acme.dns`.

A provider's settings are a `DnsOptions` subclass whose `provider` field is a one-value Literal
naming it; secrets are read from files the options name, never written in warren.yaml.
"""

from abc import ABC, abstractmethod
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from core.fields import Duration


class DnsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    # How long after the records are in place the CA is asked to look: the provider's
    # authoritative servers take a moment to serve a new record (certbot's Cloudflare plugin
    # waits 10 s as well).
    propagation_delay: Duration = Field(default=timedelta(seconds=10), ge=timedelta(0))

    def resolved(self, base: Path) -> Self:
        """Paths relative to the directory of warren.yaml, as every path in it is."""
        return self.model_copy(
            update={
                name: (base / value.expanduser()).resolve()
                for name, value in self
                if isinstance(value, Path)
            }
        )


class DnsError(Exception):
    """The provider refused or could not be reached; the message says what it answered."""


class DnsProvider(ABC):
    name: ClassVar[str]

    def __init__(self, options: DnsOptions) -> None:
        self.options = options

    @abstractmethod
    async def add_txt(self, record: str, value: str) -> str:
        """Create TXT `record` (a full name, no trailing dot) holding `value`; returns what
        `remove_txt` needs to remove exactly that record and no other."""

    @abstractmethod
    async def remove_txt(self, handle: str) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - providers without connections have nothing to close
        pass
