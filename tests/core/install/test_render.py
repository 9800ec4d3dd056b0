"""core.install.render: the systemd units rendered with real paths pass `systemd-analyze verify`
(which fails on a broken one), and hold exactly the capabilities the README lists."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.install.answers import Answers, InitError
from core.install.render import NODE_UNITS, SITE_UNIT, Paths, node_files, unit_word
from core.tunnels import new_site_secret
from tests.support.ci import in_ci

ANSWERS = Answers(
    domain="example.com",
    email="admin@example.com",
    admin="admin",
    site="home",
    wg_host="wg.example.com",
    ipv4=None,
    ipv6=None,
)


def rendered(tmp_path: Path) -> dict[str, Path]:
    """The units as `warren init` writes them, with this environment's warren."""
    paths = Paths(
        tmp_path / "etc", tmp_path / "units", Path(sys.executable).parent / "warren", "warren"
    )
    units: dict[str, Path] = {}
    for file in node_files(ANSWERS, paths, *new_site_secret()):
        if file.path.suffix == ".service":
            file.path.parent.mkdir(parents=True, exist_ok=True)
            file.path.write_text(file.text)
            units[file.path.name] = file.path
    return units


def verify(units: list[Path]) -> str:
    """What systemd-analyze says about the units; it exits 0 on unknown keys and values it
    ignores, so anything it says at all counts as a complaint."""
    if shutil.which("systemd-analyze") is None:
        reason = "needs systemd-analyze (Debian package systemd; ./dev test installs it)"
        if in_ci():
            pytest.fail(f"CI must verify the units, but this machine {reason}")
        pytest.skip(reason)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )
    return (done.stdout + done.stderr).strip() or ("" if done.returncode == 0 else "failed")


def test_the_rendered_units_verify(tmp_path: Path) -> None:
    units = rendered(tmp_path)
    assert sorted(units) == sorted([*NODE_UNITS, SITE_UNIT])
    assert verify(list(units.values())) == ""


@pytest.mark.parametrize(
    ("good", "broken"),
    [
        ("Type=notify", "Type=notfy"),
        ("AmbientCapabilities=", "AmbientCapabilites="),
        ("ExecStart=", "ExecStart=/nowhere/warren "),
    ],
)
def test_a_broken_unit_does_not_verify(tmp_path: Path, good: str, broken: str) -> None:
    unit = rendered(tmp_path)["warren-gateway.service"]
    unit.write_text(unit.read_text().replace(good, broken, 1))
    assert verify([unit]) != ""


def settings(unit: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in unit.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def test_each_unit_has_exactly_the_capabilities_the_readme_lists(tmp_path: Path) -> None:
    units = {name: settings(path) for name, path in rendered(tmp_path).items()}
    wanted = {
        "warren-gateway.service": "CAP_NET_BIND_SERVICE",
        "warren-portal.service": "",
        "warren-sidecar.service": "CAP_NET_ADMIN",
        "warren-site.service": "CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
    }
    for name, capabilities in wanted.items():
        unit = units[name]
        assert unit.get("AmbientCapabilities", "") == capabilities, name
        assert unit["CapabilityBoundingSet"] == capabilities, name
        assert (unit["User"], unit["NoNewPrivileges"], unit["Restart"]) == (
            "warren",
            "yes",
            "on-failure",
        )
    for name in ("warren-gateway.service", "warren-portal.service", "warren-sidecar.service"):
        assert units[name]["ExecReload"] == "/bin/kill -HUP $MAINPID"  # they reload on SIGHUP
        assert units[name]["StateDirectory"] == "warren"  # warren.yaml's state_dir
    for name in ("warren-sidecar.service", "warren-site.service"):
        assert units[name]["RuntimeDirectory"] == "wireguard"  # wireguard-go's /var/run/wireguard
        assert units[name]["DeviceAllow"] == "/dev/net/tun rw"
        assert "AF_NETLINK" in units[name]["RestrictAddressFamilies"]
    assert "warren-sidecar.service" in units["warren-gateway.service"]["After"]


def test_the_site_unit_runs_the_agent_with_its_secret_as_a_credential(tmp_path: Path) -> None:
    unit = settings(rendered(tmp_path)["warren-site.service"])
    assert unit["LoadCredential"] == "home.secret:/etc/warren-site/home.secret"
    assert unit["ExecStart"].endswith(
        " site --node https://auth.example.com --site home --secret-file %d/home.secret "
        "--state-dir /var/lib/warren-site"
    )
    assert unit["StateDirectory"] == "warren-site"


def test_a_path_systemd_would_split_or_expand_is_refused() -> None:
    assert unit_word(Path("/opt/100%/warren"), "warren") == "/opt/100%%/warren"
    for path in ("/opt/my warren/warren", "/opt/$HOME/warren", '/opt/"x"/warren'):
        with pytest.raises(InitError, match="may not hold spaces"):
            unit_word(Path(path), "the warren executable")
