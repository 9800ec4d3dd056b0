"""policy.yaml as pydantic models: the contract admins write. Compiled by `core.policy.compiled`."""

import re
import socket
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from core.fields import (
    Duration,
    ListOf,
    Method,
    Pattern,
    Strict,
    non_empty,
    one_or_many,
)
from core.forwarding import DEFAULT_STRIP
from core.headers import valid_pattern
from core.paths import literal_path
from core.ratelimit.spec import RateLimit
from core.regions import parse_region


def _network(value: Any) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError("a network is text like 10.0.0.0/8 or 2001:db8::/32")
    network = _canonical_ipv4_network(value)
    if network is not None:
        return network
    try:
        return ip_network(value.strip(), strict=True)
    except ValueError as error:
        if "host bits set" in str(error):
            loose = ip_network(value.strip(), strict=False)
            raise ValueError(f"{value} has host bits set; did you mean {loose}?") from None
        raise ValueError(f"{value!r} is not an IP network") from None


_PREFIX_LENGTHS = {str(length): length for length in range(33)}  # canonical text only


def _canonical_ipv4_network(text: str) -> IPv4Network | None:
    """`a.b.c.d/n` written canonically, parsed in about two thirds of `ip_network`'s time (a
    policy can hold 100 000 of them). Anything else returns None and takes the full parser."""
    address, _, prefix = text.partition("/")
    length = _PREFIX_LENGTHS.get(prefix)
    if length is None:
        return None
    try:
        packed = socket.inet_aton(address)
    except OSError:
        return None
    if socket.inet_ntoa(packed) != address:  # inet_aton also takes "1.2.3", octal, hex
        return None
    number = int.from_bytes(packed)
    if number & ((1 << (32 - length)) - 1):
        return None  # host bits set: the full parser words the error
    return IPv4Network((number, length))


def _address(value: Any) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError("an address is text like 192.0.2.1")
    try:
        address = ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address (networks go under cidr)") from None
    return ip_network(address)


# How a rule names an address the databases cannot place: Cloudflare's XX, and AS0, which RFC 7607
# reserves so that no network announces it.
UNKNOWN_COUNTRY, UNKNOWN_ASN = "XX", 0


def _country(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{2}", value.strip()):
        raise ValueError(f"{value!r} is not a two-letter ISO 3166 country code (or XX: unknown)")
    code = value.strip().upper()
    if code == "ZZ":  # DB-IP's "no country": Warren reads it as unknown, so ZZ would never match
        raise ValueError("ZZ is no country; an address the databases cannot place is XX")
    return code


def _asn(value: Any) -> int:
    text = str(value).strip().upper().removeprefix("AS")
    if not text.isdigit() or not 0 <= int(text) < 2**32:
        raise ValueError(f"{value!r} is not an AS number like 64512 or AS64512 (or 0: unknown)")
    return int(text)


parse_country, parse_asn = _country, _asn  # for the command line's --country / --asn


type Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network)]
type Address = Annotated[IPv4Network | IPv6Network, BeforeValidator(_address)]

Action = Literal["allow", "deny", "pass"]
GEO_CONDITIONS = ("country", "country_not", "region", "region_not", "asn")
type Region = Annotated[str, BeforeValidator(parse_region)]  # UN M.49: core.regions


# A pydantic dataclass rather than a model: a policy can hold 100 000 rules, and validating into
# slotted dataclasses is several times faster than into models.
@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Rule:
    action: Action
    cidr: ListOf[Network] | None = None
    not_cidr: ListOf[Network] | None = None
    ip: ListOf[Address] | None = None
    path: ListOf[Pattern] | None = None
    method: ListOf[Method] | None = None
    country: ListOf[Annotated[str, BeforeValidator(_country)]] | None = None
    country_not: ListOf[Annotated[str, BeforeValidator(_country)]] | None = None
    region: ListOf[Region] | None = None
    region_not: ListOf[Region] | None = None
    asn: ListOf[Annotated[int, BeforeValidator(_asn)]] | None = None

    def uses_geo(self) -> bool:
        return any(getattr(self, name) is not None for name in GEO_CONDITIONS)

    def uses_country(self) -> bool:
        """Conditions decided on the country (a region is the countries it holds)."""
        return any(getattr(self, name) is not None for name in GEO_CONDITIONS if name != "asn")

    @classmethod
    def parse(cls, data: object) -> "Rule":
        return _RULE.validate_python(data)

    def conditions(self) -> dict[str, object]:
        """The rule as written (conditions present only), for people to read."""
        dumped: dict[str, object] = _RULE.dump_python(self, exclude_none=True)
        return dumped


_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)

_NAME = r"^[a-z0-9]([a-z0-9_-]{0,62})$"
type Name = Annotated[str, Field(pattern=_NAME)]
_HOST = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)


def _host(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a host is text like app.example.com or *.apps.example.com")
    name = value.strip().lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise ValueError(f"{value!r} is not a valid host name") from None
    if not _HOST.match(name):
        raise ValueError(f"{value!r} is not a host name (a wildcard may only be a leading '*.')")
    return name


type Host = Annotated[str, BeforeValidator(_host)]


def _target_host(value: Any) -> str:
    """A name as written, or an IP address in its one standard form: an IPv6 one with or without
    the brackets URLs put around it (RFC 3986 §3.2.2), so `[fd00::5]`, `fd00:0::5` and `fd00::5`
    are one target. A port belongs in `port`."""
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "/@ \t"):
        raise ValueError(f"{value!r} is not a host name or an address like 10.0.0.5 or fd00::5")
    text = value.strip()
    bracketed = text.startswith("[") and text.endswith("]")
    try:
        return str(ip_address(text[1:-1] if bracketed else text))
    except ValueError:
        if bracketed or ":" in text:
            raise ValueError(
                f"{value!r} is neither a host name nor an IP address (the port goes in `port`)"
            ) from None
    return text


class Target(Strict):
    site: Name | None = None
    host: Annotated[str, BeforeValidator(_target_host)]
    port: int = Field(ge=1, le=65535)
    scheme: Literal["http", "https"] = "http"
    # Send the PROXY protocol header first on each connection to this target (core/proxyprotocol)
    proxy_protocol: Literal["v1", "v2"] | None = None

    @property
    def authority(self) -> str:
        """host:port as URLs and Host headers write it: an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}"


class Health(Strict):
    path: str = "/"
    interval: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(seconds=2)
    fall: int = Field(default=1, ge=1, le=100)  # failed probes in a row that take a target out
    rise: int = Field(default=1, ge=1, le=100)  # good probes in a row that put it back
    host: Host | None = None  # the probes' Host; by default the resource's (core.health)

    @field_validator("host")
    @classmethod
    def _exact_host(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("*."):
            raise ValueError("a probe asks for one name: a host, not a wildcard")
        return value


# RFC 9110 §9.2.2: the idempotent methods are the safe ones (§9.2.1: GET, HEAD, OPTIONS, TRACE)
# and PUT and DELETE. Only those may be sent twice; PUT and DELETE only where the resource says
# its application keeps to that (many do not: a DELETE that counts, a PUT that appends).
type RetryMethod = Literal["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]


class Retry(Strict):
    """A request whose connection to a target failed goes once to another target (addons.retry)."""

    methods: tuple[RetryMethod, ...] = ("GET", "HEAD", "OPTIONS")


class Rewrite(Strict):
    """What the target gets instead of the client's path: `strip_prefix` removed (whole
    segments), then `add_prefix` put in front. Rules never see the result: they decided on the
    client's path (docs/configuration.md, "Routes")."""

    strip_prefix: Annotated[str, AfterValidator(literal_path)] | None = None
    add_prefix: Annotated[str, AfterValidator(literal_path)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.strip_prefix is None and self.add_prefix is None:
            raise ValueError("a rewrite needs strip_prefix, add_prefix or both")
        return self


class Route(Strict):
    """Targets for the paths `path` matches (core.policy.routes decides which route wins)."""

    path: Pattern
    targets: Annotated[tuple[Target, ...], AfterValidator(non_empty)]
    rewrite: Rewrite | None = None

    @model_validator(mode="after")
    def _strip_covers_path(self) -> Self:
        strip = self.rewrite.strip_prefix if self.rewrite is not None else None
        key = self.path.key or "/"
        if strip is not None and key != strip and not key.startswith(strip + "/"):
            raise ValueError(
                f"strip_prefix {strip} is not a leading part of every path {self.path.source} "
                "matches"
            )
        return self


def _argon2id_hash(value: str) -> str:
    if not value.startswith("$argon2id$"):
        raise ValueError("must be an argon2id hash from `warren hash`, never the secret itself")
    return value


type SecretHash = Annotated[str, AfterValidator(_argon2id_hash)]

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _emails(values: tuple[str, ...]) -> tuple[str, ...]:
    lowered = tuple(value.strip().lower() for value in values)
    for value in lowered:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
    return lowered


def _domains(values: tuple[str, ...]) -> tuple[str, ...]:
    lowered = tuple(value.strip().lower().removeprefix("@") for value in values)
    for value in lowered:
        if not _DOMAIN.match(value):
            raise ValueError(f"{value!r} is not a domain name (like example.com)")
    return lowered


class ResourceAuth(Strict):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # Alternatives to an account: whoever knows the resource's password (or PIN) gets in.
    password_hash: SecretHash | None = None
    pin_hash: SecretHash | None = None
    share_links: bool = False  # `warren share NAME` links open the resource
    basic_auth: bool = False  # API clients may send a Warren user's name and password
    # People who proved one of these addresses (an e-mail code, a provider's verified e-mail,
    # an account's e-mail) get in; lower-cased, so matching ignores case.
    emails: Annotated[tuple[str, ...], AfterValidator(_emails)] = ()
    email_domains: Annotated[tuple[str, ...], AfterValidator(_domains)] = ()
    client_ca: Path | None = None  # PEM bundle: client certificates it issued sign apps in

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.password_hash is not None and self.pin_hash is not None:
            raise ValueError("a resource has a password or a PIN, not both")
        return self


class Timeouts(Strict):
    """Towards the resource's targets: how long a connection may take to open, and how long
    the response may take to start once the request is sent (then 504)."""

    connect: Duration = timedelta(seconds=5)
    first_byte: Duration = timedelta(seconds=60)

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.connect <= timedelta(0) or self.first_byte <= timedelta(0):
            raise ValueError("timeouts must be longer than 0s")
        return self


def _strip_pattern(value: Any) -> Any:
    if not isinstance(value, str) or not valid_pattern(value):
        raise ValueError(f"{value!r} is not a header name, or a name prefix ending in one '*'")
    return value


class Site(Strict):
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Resource(Strict):
    host: ListOf[Host] | None = None
    protocol: Literal["http", "tcp", "udp"] = "http"
    port: int | None = Field(default=None, ge=1, le=65535)
    targets: tuple[Target, ...] = ()  # with routes: for the paths no route matches
    routes: tuple[Route, ...] = ()
    balance: Literal["round_robin", "least_conn", "sticky"] = "round_robin"
    health: Health | None = None
    retry: Retry = Retry()
    auth: Literal["public"] | ResourceAuth | None = None
    rules: tuple[Rule, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    timeouts: Timeouts = Timeouts()

    def every_target(self) -> tuple[Target, ...]:
        """The resource's targets and its routes', each once: what is health-checked and
        carried by a site."""
        every = (*self.targets, *(t for route in self.routes for t in route.targets))
        return tuple(dict.fromkeys(every))

    @model_validator(mode="after")
    def _protocol_fields(self) -> Self:
        if not self.targets and not self.routes:
            raise ValueError("a resource needs targets (an http resource: targets or routes)")
        if self.routes and self.protocol != "http":
            raise ValueError(f"routes are by path; a {self.protocol} resource has none")
        if self.protocol == "http":
            if self.host is None:
                raise ValueError("an http resource needs a host")
            if self.port is not None:
                raise ValueError("port is for tcp/udp resources; http resources route by host")
        else:
            if self.port is None:
                raise ValueError(f"a {self.protocol} resource needs the port it listens on")
            if self.host is not None:
                raise ValueError(f"a {self.protocol} resource has a port, not a host")
        if self.protocol == "udp" and any(t.proxy_protocol for t in self.targets):
            # Refused, never ignored: a target that expects the header would misread the stream.
            raise ValueError("proxy_protocol is sent to targets of tcp and http resources, not udp")
        return self


class PolicyFile(Strict):
    version: Literal[1]
    trusted_proxies: tuple[str, ...] = ()
    # Refuse (403) every HTTP request that did not come through a trusted proxy: with Cloudflare
    # in front, the origin cannot be reached around it. Sites registering are exempt.
    require_trusted_proxy: bool = False
    rules: tuple[Rule, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()  # every http resource, before the resource's own
    sites: dict[Name, Site] = Field(default_factory=dict)
    resources: dict[Name, Resource] = Field(default_factory=dict)
    # Request headers removed before any application sees them, besides the ones only Warren
    # sets (X-Forwarded-*, Remote-*, ...), which always go.
    strip_headers: tuple[Annotated[str, BeforeValidator(_strip_pattern)], ...] = DEFAULT_STRIP

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted(cls, value: Any) -> Any:
        for entry in one_or_many(value) or ():
            if entry != "cloudflare":
                _network(entry)
        return one_or_many(value)

    @model_validator(mode="after")
    def _proxy_required(self) -> Self:
        if self.require_trusted_proxy and not self.trusted_proxies:
            raise ValueError("require_trusted_proxy needs trusted_proxies (e.g. [cloudflare])")
        return self
