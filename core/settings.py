"""warren.yaml: node settings. Every key can also come from a `WARREN_*` variable, which wins.

Nested keys use a double underscore: `WARREN_SESSION__TTL=8h`. Relative paths are relative to
the directory of warren.yaml.
"""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from core.acme.dns import DnsSettings
from core.fields import Duration, Size
from core.problems import ConfigError, Problem, from_validation_error
from core.signinsettings import OidcProviders, Smtp
from core.storage import check_storage_url
from core.yamlfile import load_yaml, locate


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _database_files(value: Any) -> Any:
    """One file or a list; from the environment, a comma-separated list."""
    if value is None:
        return ()
    if isinstance(value, str | Path):
        return [part.strip() for part in str(value).split(",") if part.strip()]
    return value


# Consulted in order: the first database that holds an address answers (your own ranges first).
type DatabaseFiles = Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_database_files)]


class CertFiles(Section):
    """A certificate the admin manages: one PEM holding the key and the chain, or certbot's pair
    (`cert: .../fullchain.pem`, `key: .../privkey.pem`)."""

    cert: Path
    key: Path | None = None


def _cert_files(value: Any) -> Any:
    return {"cert": value} if isinstance(value, str | Path) else value


class GeoIP(Section):
    country_db: DatabaseFiles = ()
    asn_db: DatabaseFiles = ()
    cache_size: int = Field(default=65536, ge=0)  # addresses remembered per kind (LRU)


# While the shared storage is down (docs/nodes.md, "When storage is down"): `last_known` decides
# signed-in requests by their signature and the revocations last loaded; `deny` answers 503.
type SessionFailMode = Literal["last_known", "deny"]


class Session(Section):
    ttl: Duration = timedelta(hours=12)
    cookie_domain: str | None = None
    on_storage_error: SessionFailMode = "last_known"


class Listen(Section):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _listen(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT, e.g. 0.0.0.0:443")
    return {"host": host.strip("[]") or "0.0.0.0", "port": int(port)}


def _endpoint(value: Any) -> Any:
    if isinstance(value, str):
        host, colon, port = value.strip().rpartition(":")
        if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT, e.g. node.example.com:51820")
    return value


class WireGuard(Section):
    interface: str = Field(default="warren0", pattern=r"^[a-zA-Z0-9_.-]{1,15}$")
    listen_port: int = Field(default=51820, ge=1, le=65535)
    subnet: IPv4Network = IPv4Network("100.89.0.0/16")
    backend: Literal["auto", "kernel", "userspace"] = "auto"
    # Where sites send WireGuard packets; unset: the host they registered through, listen_port.
    endpoint: Annotated[str | None, BeforeValidator(_endpoint)] = None
    # The sidecar's registration API; the gateway carries /.warren/sites/ to it.
    api: Annotated[Listen, NoDecode, BeforeValidator(_listen)] = Listen(
        host="127.0.0.1", port=51821
    )
    probe_interval: Duration = timedelta(seconds=2)
    # The sidecar's nftables table that forwards nothing to or from the interface.
    isolate: bool = True


def _node_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL like https://node-a.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("node.url is this node's origin only, e.g. https://node-a.example.com")
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Node(Section):
    """This node among the nodes that share `storage` (core.cluster)."""

    # Unique among the nodes sharing storage; unset: the machine's host name.
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")
    # This node's own origin, not a load-balanced one: where site agents register with it and
    # where other nodes carry requests for sites whose tunnel to them is down.
    url: Annotated[str | None, AfterValidator(_node_url)] = None
    # PEM of the CA that other nodes' node.url certificates are verified against, instead of
    # the system's (a private CA, or the nodes' self-signed certificates).
    ca_file: Path | None = None


class Http(Section):
    """What a client's request head may be (RFC 9112 §2-5): beyond it, 431 or 408."""

    max_head_size: Size = Field(default=64 * 1024, ge=1024)  # request line and header fields
    max_headers: int = Field(default=100, ge=1)
    head_timeout: Duration = timedelta(seconds=10)  # to read a head, counted from the last answer


class Portal(Section):
    listen: Annotated[Listen, NoDecode, BeforeValidator(_listen)] = Listen(
        host="127.0.0.1", port=9180
    )
    # Whose X-Forwarded-For the portal believes (the gateway in front of it).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = (
        IPv4Network("127.0.0.1/32"),
        IPv6Network("::1/128"),
    )
    password_form: bool = True  # False: only the other ways in (identity providers, ...)


def _limit_strings(values: tuple[str, ...]) -> tuple[str, ...]:
    from limits import parse

    for value in values:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a limit like 5/minute") from None
    return values


type LimitStrings = Annotated[tuple[str, ...], AfterValidator(_limit_strings)]


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def _email(value: str | None) -> str | None:
    if value is not None and (value.count("@") != 1 or any(c.isspace() for c in value)):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _acme_directory(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:  # RFC 8555 §6.1: ACME is HTTPS only
        raise ValueError(f"{value!r} is not an https URL like {LETS_ENCRYPT}")
    return value


class Acme(Section):
    """Certificates from an ACME CA (RFC 8555) for every resource host and the portal's host,
    obtained and renewed by the gateway (core.acme). On when this section is present."""

    email: Annotated[str | None, AfterValidator(_email)] = None  # the account's contact
    directory: Annotated[str, AfterValidator(_acme_directory)] = LETS_ENCRYPT
    ca_bundle: Path | None = None  # PEM to trust for the ACME server (Pebble, a private CA)
    challenge: Literal["http-01", "dns-01"] = "http-01"  # for names that are not wildcards
    dns: DnsSettings | None = None  # wildcard names always, every name with dns-01
    # Unset: 30 days before expiry, or a third of the lifetime for shorter-lived certificates.
    renew_before: Duration | None = None
    check_interval: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    # After a failed order; doubled after each further failure, up to a day.
    retry_after: Duration = Field(default=timedelta(minutes=5), gt=timedelta(0))

    @model_validator(mode="after")
    def _dns_for_dns01(self) -> Self:
        if self.challenge == "dns-01" and self.dns is None:
            raise ValueError("challenge dns-01 needs a DNS provider in acme.dns")
        return self

    def resolved(self, base: Path) -> "Acme":
        return self.model_copy(
            update={
                "ca_bundle": None
                if self.ca_bundle is None
                else (base / self.ca_bundle.expanduser()).resolve(),
                "dns": None if self.dns is None else self.dns.resolved(base),
            }
        )


class Regulation(Section):
    """Failed sign-ins allowed per user name and per client address, in each window."""

    per_user: LimitStrings = ("5/minute", "15/hour", "40/day")
    per_ip: LimitStrings = ("20/minute", "100/hour", "400/day")
    # An IPv6 client counts as its whole network of this many bits: it can pick any address in it.
    ipv6_prefix: int = Field(default=64, ge=32, le=128)


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL like https://auth.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("public_url is the portal's origin only, e.g. https://auth.example.com")
    return f"{parts.scheme}://{parts.netloc.lower()}"


_yaml_values: ContextVar[dict[str, Any] | None] = ContextVar("warren_yaml_values", default=None)


def _metrics_listen(value: Any) -> Any:
    """HOST:PORT, `unix:/path`, or `off`."""
    if value is None or value is False or (isinstance(value, str) and value.strip() == "off"):
        return None
    if isinstance(value, str) and value.startswith("unix:"):
        if not value[5:].startswith("/"):
            raise ValueError(f"{value!r}: a Unix socket is unix:/absolute/path")
        return {"unix": value[5:]}
    return _listen(value)


class MetricsListen(Section):
    """Where a process serves /metrics, /healthz and /readyz: a loopback port or a Unix socket,
    never the public listener (a resource whose target is this listener puts it behind the
    policy)."""

    host: str = "127.0.0.1"
    port: int = 0
    unix: Path | None = None

    def __str__(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


type MetricsAddress = Annotated[MetricsListen | None, NoDecode, BeforeValidator(_metrics_listen)]


class Metrics(Section):
    """Prometheus metrics and health, one listener per process (`off` for none)."""

    gateway: MetricsAddress = MetricsListen(port=9490)
    portal: MetricsAddress = MetricsListen(port=9491)
    sidecar: MetricsAddress = MetricsListen(port=9492)


class Logging(Section):
    """One format for every component's log, and the gateway's access log."""

    # auto: a plain human format on a terminal, JSON lines otherwise (journald, Docker, files)
    format: Literal["auto", "json", "human"] = "auto"
    access: Literal["all", "refused", "off"] = "all"  # a line per request, as nginx does
    access_file: Path | None = None  # None: standard output; a file is reopened on SIGUSR1
    access_query: bool = False  # query strings can carry secrets: left out unless asked for


class Admin(Section):
    """The admin console on the portal (/admin): members of this group, signed in with 2FA."""

    group: str = Field(default="admins", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_yaml_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_values.get() or {})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WARREN_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    public_url: Annotated[str | None, AfterValidator(_public_url)] = None
    listen: Annotated[Listen, NoDecode, BeforeValidator(_listen)] = Listen(host="0.0.0.0", port=443)
    certs: tuple[Annotated[CertFiles, BeforeValidator(_cert_files)], ...] = ()
    policy_file: Path = Path("policy.yaml")
    users_file: Path = Path("users.yaml")
    state_dir: Path = Path("/var/lib/warren")
    storage: Annotated[str, AfterValidator(check_storage_url)] = "memory://"
    geoip: GeoIP = GeoIP()
    session: Session = Session()
    wireguard: WireGuard = WireGuard()
    node: Node = Node()
    reload_poll: Duration = timedelta(seconds=1)
    control_socket: Path | None = None
    portal: Portal = Portal()
    regulation: Regulation = Regulation()
    http: Http = Http()
    # Plain HTTP (e.g. 0.0.0.0:80): ACME's HTTP-01 answers, and a 308 to https for the rest.
    http_listen: Annotated[Listen | None, NoDecode, BeforeValidator(_listen)] = None
    # Connections to listen/http_listen from the policy's trusted_proxies start with a PROXY
    # protocol header (an L4 load balancer in front); addons/proxyaccept.py
    listen_proxy_protocol: bool = False
    acme: Acme | None = None
    metrics: Metrics = Metrics()
    logging: Logging = Logging()
    admin: Admin = Admin()
    oidc: OidcProviders = Field(default_factory=dict)  # identity providers, by name
    smtp: Smtp | None = None  # where e-mail codes are sent through

    @model_validator(mode="after")
    def _http_listen_apart(self) -> Self:
        http = self.http_listen
        if http is not None and http.port == self.listen.port:
            raise ValueError(
                f"http_listen: port {http.port} is listen's too; plain HTTP needs its own (80)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    @property
    def node_name(self) -> str:
        return self.node.name or socket.gethostname().split(".")[0].lower()

    @property
    def control_path(self) -> Path:
        return self.control_socket or self.state_dir / "gateway.sock"

    def resolved(self, base: Path) -> "Settings":
        def under(path: Path | None) -> Path | None:
            return None if path is None else (base / path.expanduser()).resolve()

        def all_under(paths: tuple[Path, ...]) -> tuple[Path, ...]:
            return tuple((base / path.expanduser()).resolve() for path in paths)

        return self.model_copy(
            update={
                "certs": tuple(
                    CertFiles(cert=(base / c.cert.expanduser()).resolve(), key=under(c.key))
                    for c in self.certs
                ),
                "policy_file": under(self.policy_file),
                "users_file": under(self.users_file),
                "state_dir": under(self.state_dir),
                "control_socket": under(self.control_socket),
                "logging": self.logging.model_copy(
                    update={"access_file": under(self.logging.access_file)}
                ),
                "acme": self.acme.resolved(base) if self.acme is not None else None,
                "oidc": {name: p.resolved(base) for name, p in self.oidc.items()},
                "smtp": self.smtp.resolved(base) if self.smtp is not None else None,
                "node": self.node.model_copy(update={"ca_file": under(self.node.ca_file)}),
                "geoip": self.geoip.model_copy(
                    update={
                        "country_db": all_under(self.geoip.country_db),
                        "asn_db": all_under(self.geoip.asn_db),
                    }
                ),
            }
        )


@contextmanager
def _yaml(values: dict[str, Any]) -> Iterator[None]:
    token = _yaml_values.set(values)
    try:
        yield
    finally:
        _yaml_values.reset(token)


def load_settings(path: Path | None) -> Settings:
    """warren.yaml (optional: environment alone is enough) merged with `WARREN_*` variables."""
    text, data = ("", {}) if path is None else load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem((), "the file must be a mapping of settings", path)])
    try:
        with _yaml(data):
            settings = Settings()
    except ValidationError as error:
        raise ConfigError(locate(text, from_validation_error(error), path)) from None
    except SettingsError as error:  # an environment variable that does not parse
        raise ConfigError([Problem((), f"{error}: {error.__cause__}", path)]) from None
    return settings.resolved(path.parent if path is not None else Path.cwd())
