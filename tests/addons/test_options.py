"""The mitmproxy options a Warren gateway sets (addons.options), derived from warren.yaml."""

from pathlib import Path

from addons.options import UNROUTED, gateway_options, listen_modes, reverse_mode
from core.settings import Settings, load_settings


def settings(tmp_path: Path, text: str = "") -> Settings:
    (tmp_path / "warren.yaml").write_text(f"listen: 127.0.0.1:8443\n{text}")
    return load_settings(tmp_path / "warren.yaml")


def test_a_gateway_that_chose_no_mode_listens_where_warren_yaml_says(tmp_path: Path) -> None:
    options = gateway_options(settings(tmp_path), ["regular"])
    assert options["mode"] == [f"reverse:{UNROUTED}@127.0.0.1:8443"]
    assert reverse_mode(settings(tmp_path)) == "reverse:http://127.0.0.1:9@127.0.0.1:8443"


def test_a_mode_the_admin_chose_is_kept(tmp_path: Path) -> None:
    chosen = ["reverse:http://127.0.0.1:9@0.0.0.0:8080", "reverse:http://127.0.0.1:9@:8443"]
    assert "mode" not in gateway_options(settings(tmp_path), chosen)


def test_what_every_gateway_needs_whatever_its_mode(tmp_path: Path) -> None:
    for mode in (["regular"], ["reverse:http://x@8080"]):
        options = gateway_options(settings(tmp_path), mode)
        assert options["keep_host_header"] is True  # routing is by the client's Host
        assert options["connection_strategy"] == "lazy"  # the upstream is chosen by Warren
        assert options["stream_large_bodies"] == "1m"
        assert options["rawtcp"] is False
        assert options["validate_inbound_headers"] is True
        assert "certs" not in options  # none in warren.yaml: mitmproxy's own


def test_certificates_are_not_left_to_mitmproxys_option(tmp_path: Path) -> None:
    # mitmproxy reads `certs` once at start; addons.certificates serves them and follows changes.
    options = gateway_options(settings(tmp_path, "certs: [a.pem, b.pem]\n"), ["regular"])
    assert "certs" not in options


def test_http_listen_adds_a_plain_http_listener_to_warrens_mode_or_to_the_admins(
    tmp_path: Path,
) -> None:
    plain = settings(tmp_path, "http_listen: 0.0.0.0:80\n")
    ours = [f"reverse:{UNROUTED}@127.0.0.1:8443", f"reverse:{UNROUTED}@0.0.0.0:80"]
    assert listen_modes(plain) == ours
    assert gateway_options(plain, ["regular"])["mode"] == ours
    chosen = [f"reverse:{UNROUTED}@:8443"]
    assert gateway_options(plain, chosen)["mode"] == [*chosen, ours[1]]
    assert "mode" not in gateway_options(plain, [*chosen, ours[1]])  # already there
    assert listen_modes(settings(tmp_path)) == ours[:1]  # off unless asked: no port 80
