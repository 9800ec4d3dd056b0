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
