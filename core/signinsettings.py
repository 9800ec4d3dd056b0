"""warren.yaml's sections for the other ways in: identity providers (`oidc`) and the SMTP
server e-mail codes are sent through (`smtp`). Secrets come from a file or a `WARREN_*`
variable (`WARREN_OIDC__<NAME>__CLIENT_SECRET`, `WARREN_SMTP__PASSWORD`), never from the file
people share."""

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from core.fields import Duration

PROVIDER_NAME = r"^[a-z0-9][a-z0-9-]{0,31}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _issuer(value: str) -> str:
    # OIDC Discovery §4.3: the issuer is an https URL; plain http only where nobody can listen
    # in (a provider on this machine, as in tests).
    parts = urlsplit(value)
    if not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an issuer URL like https://id.example.com")
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
        raise ValueError(f"{value!r}: an identity provider is reached over https")
    return value  # as given: the ID token's iss must equal it exactly (OIDC Core §3.1.3.7)


def _lowered(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(value.strip().lower().removeprefix("@") for value in values)


def _secret_of(inline: SecretStr | None, file: Path | None, what: str) -> str:
    if inline is not None:
        return inline.get_secret_value()
    if file is None:
        raise ValueError(f"{what} is not set")
    return file.read_text().strip()


class OidcProvider(_Section):
    title: str | None = None  # "Sign in with <title>"; the provider's name when not set
    issuer: Annotated[str, AfterValidator(_issuer)]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    groups: dict[str, str] = Field(default_factory=dict)  # provider's group -> Warren's group
    # Who may sign in without a users.yaml account linked to them (by verified e-mail).
    allow_emails: Annotated[tuple[str, ...], AfterValidator(_lowered)] = ()
    allow_domains: Annotated[tuple[str, ...], AfterValidator(_lowered)] = ()
    ca_bundle: Path | None = None  # PEM to trust for the provider (a private CA)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("give client_secret (or its WARREN_ variable) or client_secret_file")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        return self

    def secret(self) -> str:
        return _secret_of(self.client_secret, self.client_secret_file, "client_secret")

    def label(self, name: str) -> str:
        return self.title or name

    def resolved(self, base: Path) -> "OidcProvider":
        return self.model_copy(
            update={
                "client_secret_file": _under(base, self.client_secret_file),
                "ca_bundle": _under(base, self.ca_bundle),
            }
        )


type OidcProviders = dict[Annotated[str, Field(pattern=PROVIDER_NAME)], OidcProvider]


class Smtp(_Section):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")  # the From address
    ca_bundle: Path | None = None  # PEM to trust for the server's certificate
    timeout: Duration = timedelta(seconds=10)
    code_lifetime: Duration = timedelta(minutes=10)  # how long an e-mailed code may be used

    def secret(self) -> str | None:
        if self.password is None and self.password_file is None:
            return None
        return _secret_of(self.password, self.password_file, "password")

    def resolved(self, base: Path) -> "Smtp":
        return self.model_copy(
            update={
                "password_file": _under(base, self.password_file),
                "ca_bundle": _under(base, self.ca_bundle),
            }
        )


def _under(base: Path, path: Path | None) -> Path | None:
    return None if path is None else (base / path.expanduser()).resolve()
