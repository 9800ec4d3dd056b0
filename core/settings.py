"""warren.yaml: node settings. Every key can also come from a `WARREN_*` variable, which wins.

Nested keys use a double underscore: `WARREN_SESSION__TTL=8h`. Relative paths are relative to
the directory of warren.yaml.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from core.fields import Duration
from core.problems import ConfigError, Problem, from_validation_error
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


class GeoIP(Section):
    country_db: DatabaseFiles = ()
    asn_db: DatabaseFiles = ()
    cache_size: int = Field(default=65536, ge=0)  # addresses remembered per kind (LRU)


class Session(Section):
    ttl: Duration = timedelta(hours=12)
    cookie_domain: str | None = None


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


class Portal(Section):
    listen: Annotated[Listen, NoDecode, BeforeValidator(_listen)] = Listen(
        host="127.0.0.1", port=9180
    )
    # Whose X-Forwarded-For the portal believes (the gateway in front of it).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = (
        IPv4Network("127.0.0.1/32"),
        IPv6Network("::1/128"),
    )


def _limit_strings(values: tuple[str, ...]) -> tuple[str, ...]:
    from limits import parse

    for value in values:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a limit like 5/minute") from None
    return values


type LimitStrings = Annotated[tuple[str, ...], AfterValidator(_limit_strings)]


class Regulation(Section):
    """Failed sign-ins allowed per user name and per client address, in each window."""

    per_user: LimitStrings = ("5/minute", "15/hour", "40/day")
    per_ip: LimitStrings = ("20/minute", "100/hour", "400/day")


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
    certs: tuple[Path, ...] = ()
    policy_file: Path = Path("policy.yaml")
    users_file: Path = Path("users.yaml")
    state_dir: Path = Path("/var/lib/warren")
    storage: Annotated[str, AfterValidator(check_storage_url)] = "memory://"
    geoip: GeoIP = GeoIP()
    session: Session = Session()
    wireguard: WireGuard = WireGuard()
    reload_poll: Duration = timedelta(seconds=1)
    control_socket: Path | None = None
    portal: Portal = Portal()
    regulation: Regulation = Regulation()

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
    def control_path(self) -> Path:
        return self.control_socket or self.state_dir / "gateway.sock"

    def resolved(self, base: Path) -> "Settings":
        def under(path: Path | None) -> Path | None:
            return None if path is None else (base / path.expanduser()).resolve()

        def all_under(paths: tuple[Path, ...]) -> tuple[Path, ...]:
            return tuple((base / path.expanduser()).resolve() for path in paths)

        return self.model_copy(
            update={
                "certs": tuple(under(p) for p in self.certs),
                "policy_file": under(self.policy_file),
                "users_file": under(self.users_file),
                "state_dir": under(self.state_dir),
                "control_socket": under(self.control_socket),
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
