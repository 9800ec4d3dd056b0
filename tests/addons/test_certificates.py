"""What a gateway serves over TLS (addons.certificates), on real gateway processes: the
certificate for the name the client asks for, the first one for any other, and a certificate
replaced on disk from the next handshake on — after a change, SIGHUP or `warren reload` —
without a restart; a replacement that does not load keeps the one before."""

import os
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from demo import processes
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.tls import LocalCa
from tests.support.waiting import eventually


def policy(backend: Backend) -> str:
    return f"""\
version: 1
resources:
  app:
    host: [app.example, "*.apps.example"]
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


@pytest.fixture(scope="module")
def ca() -> LocalCa:
    return LocalCa.fresh()


def served(gateway: Gateway, ca: LocalCa, sni: str | None, tmp: Path) -> x509.Certificate:
    """The leaf the gateway presents for `sni`, verified against the test CA (by name, too)."""
    context = ssl.create_default_context(cafile=ca.write(tmp / "ca.pem"))
    if sni is None:
        context.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def serial_for(gateway: Gateway, ca: LocalCa, sni: str, tmp: Path) -> int:
    return served(gateway, ca, sni, tmp).serial_number


@pytest.mark.parametrize("kind", ["warren", "mitmdump"])
def test_each_name_gets_its_certificate(
    kind: str, ca: LocalCa, backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    app = ca.issue(["app.example"], tmp_path / "app.pem")
    wild = ca.issue(["*.apps.example"], tmp_path / "fullchain.pem", key_path=tmp_path / "key.pem")
    settings = f"certs:\n  - {tmp_path / 'app.pem'}\n"
    settings += f"  - {{cert: {tmp_path / 'fullchain.pem'}, key: {tmp_path / 'key.pem'}}}\n"
    gateway = start_gateway(policy(backend), kind=kind, settings=settings)
    assert serial_for(gateway, ca, "app.example", tmp_path) == app.serial_number
    assert serial_for(gateway, ca, "x.apps.example", tmp_path) == wild.serial_number
    # No name, or one no certificate is for: the first certificate (the client will say so).
    assert served(gateway, ca, None, tmp_path).serial_number == app.serial_number


def test_a_replaced_certificate_is_served_without_a_restart(
    ca: LocalCa, backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    path = tmp_path / "app.pem"
    ca.issue(["app.example"], path)
    gateway = start_gateway(policy(backend), settings=f"certs: [{path}]\nreload_poll: 0.2s\n")
    pid = gateway.process.pid

    renewed = ca.issue(["app.example"], path)  # noticed by the watch
    eventually(lambda: serial_for(gateway, ca, "app.example", tmp_path) == renewed.serial_number)

    # Written where the watch cannot tell (same size and time): SIGHUP re-reads it all the same.
    stat = path.stat()
    again = ca.issue(["app.example"], path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    gateway.process.send_signal(signal.SIGHUP)
    eventually(lambda: serial_for(gateway, ca, "app.example", tmp_path) == again.serial_number)
    assert gateway.process.pid == pid
    assert gateway.process.poll() is None


def test_warren_reload_reports_a_certificate_that_does_not_load(
    ca: LocalCa, backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    path = tmp_path / "app.pem"
    first = ca.issue(["app.example"], path)
    gateway = start_gateway(policy(backend), settings=f"certs: [{path}]\n")
    path.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
    reload = subprocess.run(
        processes.warren("reload", "--config", str(gateway.config)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert reload.returncode == 1
    assert f"{path}: holds no PEM certificate" in reload.stderr
    assert serial_for(gateway, ca, "app.example", tmp_path) == first.serial_number
    assert "still serving the one loaded before" in gateway.logs()


def test_a_gateway_refuses_to_start_on_a_certificate_it_cannot_serve(
    ca: LocalCa, backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    ca.issue(["app.example"], tmp_path / "cert.pem", key_path=tmp_path / "key.pem")
    with pytest.raises(pytest.fail.Exception) as failed:
        start_gateway(policy(backend), settings=f"certs: [{tmp_path / 'cert.pem'}]\n")
    assert "certs[0]" in str(failed.value)
    assert "holds no private key" in str(failed.value)
