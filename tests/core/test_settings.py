from datetime import timedelta
from pathlib import Path

import pytest

from core.problems import ConfigError
from core.settings import load_settings


def test_yaml_with_environment_overrides_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "warren.yaml").write_text(
        "listen: 127.0.0.1:8443\npolicy_file: conf/policy.yaml\nsession: {ttl: 8h}\n"
    )
    monkeypatch.setenv("WARREN_SESSION__COOKIE_DOMAIN", ".example.com")
    monkeypatch.setenv("WARREN_STORAGE", "redis://127.0.0.1:6379/0")
    settings = load_settings(tmp_path / "warren.yaml")
    assert str(settings.listen) == "127.0.0.1:8443"
    assert settings.policy_file == tmp_path / "conf" / "policy.yaml"
    assert settings.session.ttl == timedelta(hours=8)
    assert settings.session.cookie_domain == ".example.com"
    assert settings.storage == "redis://127.0.0.1:6379/0"
    assert settings.control_path == Path("/var/lib/warren/gateway.sock")


def test_errors_are_located(tmp_path: Path) -> None:
    (tmp_path / "warren.yaml").write_text("listen: nope\nsession: {ttl: 8x, bogus: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "warren.yaml")
    messages = [str(problem) for problem in caught.value.problems]
    assert messages[0].endswith("warren.yaml:1: listen: 'nope' is not HOST:PORT, e.g. 0.0.0.0:443")
    assert "warren.yaml:2: session.ttl: '8x' is not a duration" in messages[1]
    assert "session.bogus: unknown key" in messages[2]


def test_environment_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARREN_LISTEN", "[::1]:8080")
    assert str(load_settings(None).listen) == "[::1]:8080"


def test_acme_is_off_unless_its_section_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(None).acme is None
    assert load_settings(None).http_listen is None  # no port 80 unless asked
    monkeypatch.setenv("WARREN_ACME__EMAIL", "admin@example.com")
    acme = load_settings(None).acme
    assert acme is not None
    assert acme.email == "admin@example.com"
    assert acme.directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme.challenge == "http-01"
    assert acme.renew_before is None  # 30 days, or a third of a short life (core.acme.plan)


def test_acme_paths_are_relative_to_warren_yaml(tmp_path: Path) -> None:
    (tmp_path / "warren.yaml").write_text(
        "http_listen: 0.0.0.0:80\n"
        "acme:\n"
        "  ca_bundle: ca/pebble.pem\n"
        "  challenge: dns-01\n"
        "  dns: {provider: cloudflare, api_token_file: secrets/cf.token}\n"
    )
    settings = load_settings(tmp_path / "warren.yaml")
    assert str(settings.http_listen) == "0.0.0.0:80"
    assert settings.acme is not None
    assert settings.acme.dns is not None
    assert settings.acme.ca_bundle == tmp_path / "ca" / "pebble.pem"
    assert settings.acme.dns.api_token_file == tmp_path / "secrets" / "cf.token"
    assert settings.acme.dns.api_url == "https://api.cloudflare.com/client/v4"


@pytest.mark.parametrize(
    ("acme", "message"),
    [
        ("{directory: 'http://ca.example/dir'}", "acme.directory: 'http://ca.example/dir' is not"),
        ("{email: 'not an address'}", "acme.email: 'not an address' is not an e-mail address"),
        ("{challenge: dns-01}", "acme: challenge dns-01 needs a DNS provider in acme.dns"),
        ("{challenge: tls-alpn-01}", "acme.challenge: Input should be 'http-01' or 'dns-01'"),
        ("{dns: {provider: route53}}", "acme.dns.provider: Input should be 'cloudflare'"),
        ("{dns: {provider: cloudflare}}", "acme.dns.api_token_file: Field required"),
        ("{dns: {provider: cloudflare, api_token: x}}", "acme.dns.api_token: unknown key"),
        ("{retry_after: 0s}", "acme.retry_after: Input should be greater than 0"),
    ],
    ids=[
        "http-directory",
        "email",
        "dns-01-alone",
        "tls-alpn",
        "provider",
        "token-file",
        "token-inline",
        "no-retry",
    ],
)
def test_a_wrong_acme_section_is_refused_saying_where(
    acme: str, message: str, tmp_path: Path
) -> None:
    (tmp_path / "warren.yaml").write_text(f"acme: {acme}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "warren.yaml")
    assert message in str(caught.value)


def test_http_listen_needs_a_port_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "warren.yaml").write_text("listen: 0.0.0.0:443\nhttp_listen: 127.0.0.1:443\n")
    with pytest.raises(ConfigError, match="http_listen: port 443 is listen's too"):
        load_settings(tmp_path / "warren.yaml")


def test_metrics_listeners_are_loopback_ports_by_default_and_can_be_a_socket_or_off(
    tmp_path: Path,
) -> None:
    defaults = load_settings(None).metrics
    assert [str(listen) for listen in (defaults.gateway, defaults.portal, defaults.sidecar)] == [
        "127.0.0.1:9490",
        "127.0.0.1:9491",
        "127.0.0.1:9492",
    ]
    (tmp_path / "warren.yaml").write_text(
        "metrics: {gateway: 'off', portal: unix:/run/warren/portal.sock, sidecar: '[::1]:9999'}\n"
    )
    metrics = load_settings(tmp_path / "warren.yaml").metrics
    assert metrics.gateway is None
    assert metrics.portal is not None
    assert metrics.portal.unix == Path("/run/warren/portal.sock")
    assert str(metrics.sidecar) == "[::1]:9999"


def test_a_metrics_socket_path_must_be_absolute(tmp_path: Path) -> None:
    (tmp_path / "warren.yaml").write_text("metrics: {gateway: unix:metrics.sock}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "warren.yaml")
    assert "unix:/absolute/path" in str(caught.value.problems[0])


def test_the_access_log_file_is_relative_to_warren_yaml_and_modes_are_checked(
    tmp_path: Path,
) -> None:
    (tmp_path / "warren.yaml").write_text("logging: {access: refused, access_file: log/a.log}\n")
    logging = load_settings(tmp_path / "warren.yaml").logging
    assert (logging.access, logging.access_file) == ("refused", tmp_path / "log" / "a.log")
    assert logging.access_query is False
    (tmp_path / "warren.yaml").write_text("logging: {access: some}\n")
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "warren.yaml")
