"""ACME end to end (addons.acmeloop, core.acme): real gateway processes get certificates from a
real Pebble, serve them by SNI to clients that trust only Pebble's root, renew them without a
restart or a failed request, keep the old one when a challenge fails, get a wildcard through the
Cloudflare provider (DNS-01, Pebble reading the TXT record), and share one order between two
nodes through Redis."""

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509

from core import control
from demo import processes
from tests.support.backend import Backend
from tests.support.cloudflare_api import running_cloudflare_api
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.pebble import Pebble, require_pebble
from tests.support.redis import RedisServer, require_redis_server
from tests.support.waiting import eventually


@pytest.fixture
def http_port() -> int:
    """Pebble validates HTTP-01 here: the gateway's `http_listen`."""
    return processes.free_port()


def start_pebble(tmp_path: Path, http_port: int, validity: int = 3600) -> Iterator[Pebble]:
    require_pebble()
    pebble = Pebble(tmp_path / "pebble", http_port=http_port, validity_seconds=validity).start()
    try:
        yield pebble
    finally:
        pebble.stop()


@pytest.fixture
def pebble(tmp_path: Path, http_port: int) -> Iterator[Pebble]:
    yield from start_pebble(tmp_path, http_port)


@pytest.fixture
def short_lived(tmp_path: Path, http_port: int) -> Iterator[Pebble]:
    """Certificates of 15 s: renewed after two thirds of that, by the default rule."""
    yield from start_pebble(tmp_path, http_port, validity=15)


def policy(backend: Backend, *hosts: str) -> str:
    listed = ", ".join(f'"{host}"' for host in hosts)
    return f"""\
version: 1
resources:
  app:
    host: [{listed}]
    auth: public
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


def acme(pebble: Pebble, *, http_port: int | None, more: str = "") -> str:
    listen = f"http_listen: 127.0.0.1:{http_port}\n" if http_port else ""
    return f"""{listen}acme:
  email: admin@warren.test
  directory: {pebble.url}
  ca_bundle: {pebble.ca_bundle}
  retry_after: 1s
{more}"""


def certificate_file(gateway: Gateway, name: str) -> Path:
    return gateway.directory / "state" / "acme" / "certificates" / name


def fetch(
    gateway: Gateway, name: str, root: bytes | None, path: str = "/"
) -> tuple[int, x509.Certificate]:
    """A GET over TLS with `name` as SNI and Host, trusting `root` only (or nothing: the
    certificate is read, not verified); the status and the certificate served."""
    if root is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=root.decode())
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        head = tls.recv(65536)
    status = int(head.split(b" ", 2)[1])
    return status, x509.load_der_x509_certificate(der)


def verified(gateway: Gateway, name: str, root: bytes) -> tuple[int, x509.Certificate]:
    """`fetch`, as a condition to wait for: the new file is served from the next poll on."""
    try:
        return fetch(gateway, name, root)
    except OSError as error:  # ssl.SSLError among them
        raise AssertionError(f"{name}: {error}") from None


def served_serial(gateway: Gateway, name: str) -> int:
    return fetch(gateway, name, None)[1].serial_number


def test_a_gateway_without_certificates_gets_one_per_host_and_serves_each_by_sni(
    backend: Backend, pebble: Pebble, http_port: int, start_gateway: GatewayFactory
) -> None:
    hosts = ("app.warren.test", "grafana.warren.test")
    settings = "public_url: https://auth.warren.test\n" + acme(pebble, http_port=http_port)
    gateway = start_gateway(policy(backend, *hosts, "*.wild.warren.test"), settings=settings)
    root = pebble.root()
    for name in (*hosts, "auth.warren.test"):
        eventually(certificate_file(gateway, f"{name}.pem").exists, 60)
        status, leaf = eventually(partial(verified, gateway, name, root), 10)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [name]
        assert status == (200 if name in hosts else 404)  # the portal is no resource here
    key = certificate_file(gateway, "app.warren.test.pem")
    assert key.stat().st_mode & 0o777 == 0o600
    assert (gateway.directory / "state" / "acme" / "account.key").stat().st_mode & 0o777 == 0o600

    status_reply = control.call(gateway.directory / "state" / "gateway.sock", "status")
    assert re.search(r"app\.warren\.test \(http-01\): expires 20", status_reply["acme"])
    assert "*.wild.warren.test: not ordered: a wildcard needs DNS-01" in status_reply["acme"]

    gateway.policy.write_text(policy(backend, *hosts, "new.warren.test", "*.wild.warren.test"))
    eventually(lambda: certificate_file(gateway, "new.warren.test.pem").exists(), 60)
    assert eventually(lambda: verified(gateway, "new.warren.test", root), 10)[0] == 200
    assert pebble.orders() == 4  # one per name, none twice


def test_the_pack_under_mitmdump_gets_its_certificate_too(
    backend: Backend, pebble: Pebble, http_port: int, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(
        policy(backend, "app.warren.test"),
        settings=acme(pebble, http_port=http_port),
        kind="mitmdump",  # scripts' folder on sys.path: no module of the pack may hide `acme`
    )
    status, _ = eventually(lambda: verified(gateway, "app.warren.test", pebble.root()), 60)
    assert status == 200


def test_a_renewal_is_served_without_a_restart_or_a_failed_request(
    backend: Backend, short_lived: Pebble, http_port: int, start_gateway: GatewayFactory
) -> None:
    pebble = short_lived
    gateway = start_gateway(
        policy(backend, "app.warren.test"), settings=acme(pebble, http_port=http_port)
    )
    root = pebble.root()
    eventually(lambda: certificate_file(gateway, "app.warren.test.pem").exists(), 60)
    first = eventually(lambda: verified(gateway, "app.warren.test", root), 10)[1].serial_number
    serials: list[int] = []
    failures: list[object] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                status, leaf = fetch(gateway, "app.warren.test", root)
                serials.append(leaf.serial_number)
                if status != 200:
                    failures.append(status)
            except (OSError, ssl.SSLError) as error:
                failures.append(error)
            time.sleep(0.05)

    client = threading.Thread(target=keep_asking)
    client.start()
    try:
        eventually(lambda: serials and serials[-1] != first, 30)
    finally:
        stop.set()
        client.join()
    assert failures == []
    assert serials[0] == first
    assert gateway.process.poll() is None  # the same process all along
    assert "obtained" in gateway.logs()


def test_a_failed_challenge_keeps_the_old_certificate_says_why_and_is_retried(
    backend: Backend, short_lived: Pebble, http_port: int, start_gateway: GatewayFactory
) -> None:
    pebble = short_lived
    gateway = start_gateway(
        policy(backend, "app.warren.test"), settings=acme(pebble, http_port=http_port)
    )
    eventually(lambda: certificate_file(gateway, "app.warren.test.pem").exists(), 60)
    first = eventually(lambda: verified(gateway, "app.warren.test", pebble.root()), 10)[1]
    pebble.resolve("app.warren.test", "127.0.0.2")  # where no gateway listens: validation fails

    def failure_logged() -> str:
        for line in gateway.logs().splitlines():
            if "app.warren.test (http-01) not obtained" in line:
                return line
        raise AssertionError("no failure logged")

    line = eventually(failure_logged, 30)
    assert "urn:ietf:params:acme:error:connection" in line  # the CA's problem type, RFC 8555 §6.7
    assert "still serving the certificate that expires" in line
    assert "next try in 1s" in line
    assert served_serial(gateway, "app.warren.test") == first.serial_number
    reply = control.call(gateway.directory / "state" / "gateway.sock", "status")
    assert (
        "last error: app.warren.test: http-01: urn:ietf:params:acme:error:connection"
        in (reply["acme"])
    )

    pebble.unresolve("app.warren.test")
    eventually(lambda: served_serial(gateway, "app.warren.test") != first.serial_number, 30)


def test_a_wildcard_through_cloudflare_dns_01_is_validated_and_its_record_removed(
    backend: Backend, pebble: Pebble, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    token = tmp_path / "cloudflare.token"
    token.write_text("cf-token\n")
    with running_cloudflare_api("cf-token", ["warren.test"], pebble.challtestsrv_url) as api:
        dns = f"""  dns:
    provider: cloudflare
    api_token_file: {token}
    api_url: {api.url}
    propagation_delay: 0s
"""
        gateway = start_gateway(
            policy(backend, "*.apps.warren.test"), settings=acme(pebble, http_port=None, more=dns)
        )
        eventually(lambda: certificate_file(gateway, "_wildcard.apps.warren.test.pem").exists(), 60)
        status, leaf = eventually(
            lambda: verified(gateway, "x.apps.warren.test", pebble.root()), 10
        )
        assert status == 200
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["*.apps.warren.test"]
        records = api.records()
    assert records["live"] == []
    actions = [(r["action"], r["name"]) for r in records["history"]]
    assert actions == [
        ("create", "_acme-challenge.apps.warren.test"),
        ("delete", "_acme-challenge.apps.warren.test"),
    ]


def test_two_nodes_sharing_redis_order_once_and_both_serve_the_certificate(
    backend: Backend,
    pebble: Pebble,
    http_port: int,
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    require_redis_server()
    redis = RedisServer(tmp_path).start()
    try:
        shared = f"storage: {redis.url}\n"
        nodes = [
            start_gateway(
                policy(backend, "app.warren.test"),
                settings=shared + acme(pebble, http_port=port),
                name=name,
            )
            for name, port in (("one", http_port), ("two", None))  # Pebble reaches node one
        ]
        root = pebble.root()

        def serial(node: Gateway) -> int:
            return verified(node, "app.warren.test", root)[1].serial_number

        serials = [eventually(partial(serial, node), 60) for node in nodes]
        assert serials[0] == serials[1]
        assert pebble.orders() == 1
    finally:
        redis.stop()


def test_a_ca_that_refuses_leaves_the_gateway_serving(
    backend: Backend, tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    # The CA refuses at once, while the gateway starts: it must neither exit (mitmproxy ends a
    # process on an error logged during start-up) nor stop serving what needs no certificate.
    ca = f"https://127.0.0.1:{processes.free_port()}/directory"
    settings = f'acme: {{email: admin@warren.test, directory: "{ca}", retry_after: 1s}}\n'
    gateway = start_gateway(policy(backend, "app.warren.test"), settings=settings)
    eventually(lambda: gateway.logs().count("not obtained") >= 2, timeout=30)
    assert gateway.process.poll() is None
    assert gateway.get("app.warren.test", "/still-serving").status_code == 200
