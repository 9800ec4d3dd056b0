"""Cloudflare's edge networks (core.cloudflare): the lists as published, the node's copy that
`warren cloudflare-ranges update` fetches, and a gateway that believes and requires them."""

import http.server
import threading
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.cloudflare import KNOWN, RANGES_FILE, node_ranges, parse_ranges
from core.problems import ConfigError
from tests.support.backend import Backend
from tests.support.gateway import GatewayFactory
from tests.support.waiting import eventually

runner = CliRunner()


def test_a_published_list_parses() -> None:
    text = "173.245.48.0/20\n# a comment\n\n2400:cb00::/32\n"
    assert parse_ranges(text, "x") == (ip_network("173.245.48.0/20"), ip_network("2400:cb00::/32"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("173.245.48.0/20\n<html>\n2400:cb00::/32\n", r"x:2: '<html>' is not a CIDR"),
        ("0.0.0.0/0\n2400:cb00::/32\n", "x:1: 0.0.0.0/0 is wider than any Cloudflare range"),
        ("2000::/3\n10.0.0.0/8\n", "x:1: 2000::/3 is wider"),
        ("173.245.48.0/20\n", "holds IPv4 and IPv6 networks"),
        ("", "holds IPv4 and IPv6 networks"),
    ],
)
def test_a_list_that_is_not_plainly_cloudflares_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_ranges(text, "x")


def test_the_node_reads_its_copy_or_else_the_known_one(tmp_path: Path) -> None:
    assert node_ranges(tmp_path) == KNOWN
    (tmp_path / RANGES_FILE).write_text("127.0.0.0/8\n::1/128\n")
    assert node_ranges(tmp_path) == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    (tmp_path / RANGES_FILE).write_text("everyone\n")
    with pytest.raises(ConfigError, match="is not a CIDR"):
        node_ranges(tmp_path)


class Lists:
    """Loopback stand-in for www.cloudflare.com/ips-v4 and /ips-v6: whatever `body` says."""

    def __init__(self) -> None:
        self.body = {"/ips-v4": "127.0.0.0/8\n", "/ips-v6": "::1/128\n"}
        lists = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = lists.body.get(self.path, "").encode()
                self.send_response(200 if self.path in lists.body else 404)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def urls(self) -> list[str]:
        return ["--url", f"{self.base}/ips-v4", "--url", f"{self.base}/ips-v6"]


@pytest.fixture
def lists() -> Iterator[Lists]:
    served = Lists()
    yield served
    served.server.shutdown()


def policy(backend: Backend) -> str:
    return f"""\
version: 1
trusted_proxies: [cloudflare]
require_trusted_proxy: true
resources:
  app:
    host: app.example
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


def test_updated_ranges_reach_a_running_gateway(
    lists: Lists, backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy(backend))
    headers = {"cf-connecting-ip": "198.51.100.7"}
    # Loopback is not Cloudflare's: asked directly, the gateway refuses, whatever it is told.
    assert gateway.get("app.example", "/x", headers=headers).status_code == 403

    # Served as the loopback list, the gateway's own network becomes "Cloudflare" here.
    result = runner.invoke(
        app, ["cloudflare-ranges", "update", "-c", str(gateway.config), *lists.urls()]
    )
    assert result.exit_code == 0, result.output
    assert "2 networks" in result.output
    assert "gateway: policy" in result.output  # it asked the running gateway to reload
    marker = "/ranges-updated"
    assert gateway.get("app.example", marker, headers=headers).status_code == 200
    seen = eventually(lambda: backend.received(marker))
    received = {name.lower(): value for name, value in seen[0]["headers"]}
    assert received["x-forwarded-for"] == "198.51.100.7"

    # A list that would let everyone speak for anyone is refused; the copy in use stays.
    lists.body["/ips-v4"] = "0.0.0.0/0\n"
    result = runner.invoke(
        app, ["cloudflare-ranges", "update", "-c", str(gateway.config), *lists.urls()]
    )
    assert result.exit_code == 1
    assert "wider than any Cloudflare range; the ranges in use are unchanged" in result.output
    assert (gateway.directory / "state" / RANGES_FILE).read_text().count("127.0.0.0/8") == 1


def test_require_trusted_proxy_needs_trusted_proxies(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nrequire_trusted_proxy: true\n")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "require_trusted_proxy needs trusted_proxies" in result.output
