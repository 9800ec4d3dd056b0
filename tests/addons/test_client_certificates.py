"""Mutual TLS per resource (`auth: {client_ca: FILE}`, addons.clientcert) through a real gateway
on TLS: a certificate from the resource's CA signs the app in (the backend sees Remote-User
cert:NAME), none leaves sign-in as it was (401 for an API client, the portal for a browser),
another CA's is refused; only the hosts of such resources ask for a certificate, a request on a
connection made for another host gets 421 (HTTP/1.1 and HTTP/2), a client resuming its TLS
session still gets in, and a bad client_ca file is a policy error that keeps the last good
policy running."""

import base64
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from demo import processes
from tests.core.test_clientcerts import DAY, Authority
from tests.support import gateway as gateways
from tests.support.backend import Backend
from tests.support.ci import in_ci
from tests.support.gateway import Gateway
from tests.support.tls import LocalCa
from tests.support.waiting import eventually

PORTAL = "https://auth.example"
BROWSER = "text/html,application/xhtml+xml"


def policy(backend: Backend, client_ca: str = "../apps-ca.pem") -> str:
    """client_ca is relative to policy.yaml's directory (the gateway's, in gw/)."""
    return f"""\
version: 1
resources:
  jobs:
    host: jobs.example
    auth: {{client_ca: {client_ca}}}
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
  wiki:
    host: wiki.example
    auth: {{}}
    targets: [{{host: 127.0.0.1, port: {backend.port}}}]
"""


@dataclass
class Setup:
    kind: str  # of gateway: what the paths of its requests start with, apart from the other's
    gateway: Gateway
    server_ca: Path  # what clients trust for the gateway's own certificate
    apps: Authority  # jobs' client CA
    directory: Path

    def client(self, certificate: Path | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.server_ca))
        if certificate is not None:
            context.load_cert_chain(certificate)
        return httpx.Client(base_url=f"https://127.0.0.1:{self.gateway.port}", verify=context)

    def certificate(
        self,
        authority: Authority,
        name: str,
        *,
        starts: datetime.timedelta = -DAY,
        ends: datetime.timedelta = DAY,
    ) -> Path:
        path = self.directory / f"{name}.pem"
        authority.issue(name, path, starts=starts, ends=ends)
        return path


def get(
    client: httpx.Client, host: str, path: str, *, accept: str = "application/json"
) -> httpx.Response:
    """A request for `host` whose TLS names `host` too (SNI), as a client by name would send."""
    return client.get(
        path, headers={"host": host, "accept": accept}, extensions={"sni_hostname": host}
    )


@pytest.fixture(scope="module", params=["warren", "mitmdump"])
def setup(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Setup]:
    """`warren gateway`, and mitmdump with the pack as a script (its TLS addon runs first in
    both, which the certificate request relies on)."""
    directory = tmp_path_factory.mktemp(f"mtls-{request.param}")
    server = LocalCa.fresh()
    server.issue(["jobs.example", "wiki.example"], directory / "server.pem")
    apps = Authority.fresh("Jobs CA")
    apps.write(directory / "apps-ca.pem")  # read when the policy loads: there before it
    gateway = gateways.launch(
        directory / "gw",
        policy(backend),
        kind=request.param,
        settings=f"certs: [{directory / 'server.pem'}]\npublic_url: {PORTAL}\n",
    )
    try:
        gateways.wait(gateway)
    except (RuntimeError, TimeoutError):
        gateways.stop(gateway)
        pytest.fail(f"gateway did not start:\n{gateway.logs()}")
    yield Setup(request.param, gateway, server.write(directory / "server-ca.pem"), apps, directory)
    gateways.stop(gateway)
    sys.stderr.write(f"\n--- {gateway.log} ---\n{gateway.logs()[-3000:]}\n")


def test_a_certificate_from_the_resources_ca_signs_the_app_in(
    setup: Setup, backend: Backend
) -> None:
    certificate = setup.certificate(setup.apps, "backup-job")
    with setup.client(certificate) as client:
        response = get(client, "jobs.example", f"/mtls-{setup.kind}-good")
    assert response.status_code == 200, response.text
    (seen,) = backend.received(f"/mtls-{setup.kind}-good")
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert headers["remote-user"] == "cert:backup-job"
    assert "remote-email" not in headers
    claims = _payload(headers["x-warren-assertion"])
    assert claims["sub"] == "cert:backup-job"
    assert claims["auth_method"] == "certificate"
    assert claims["amr"] == ["swk"]


def _payload(token: str) -> dict[str, object]:
    """A JWS's claims, read without checking them (the backend's tests check signatures)."""
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_without_a_certificate_sign_in_goes_on_as_before(setup: Setup) -> None:
    with setup.client() as client:
        api = get(client, "jobs.example", f"/mtls-{setup.kind}-none")
        page = get(client, "jobs.example", f"/mtls-{setup.kind}-none", accept=BROWSER)
    assert api.status_code == 401
    assert api.headers["www-authenticate"] == 'Warren realm="jobs"'
    assert page.status_code == 302
    assert page.headers["location"].startswith(f"{PORTAL}/sign-in?rd=")


def test_a_certificate_from_another_ca_is_refused(setup: Setup, backend: Backend) -> None:
    stranger = Authority.fresh("Jobs CA")  # the same name, not the same key
    with setup.client(setup.certificate(stranger, "intruder")) as client:
        response = get(client, "jobs.example", f"/mtls-{setup.kind}-stranger")
    assert response.status_code == 403
    assert "client certificate" in response.json()["detail"]
    assert backend.received(f"/mtls-{setup.kind}-stranger") == []
    assert "client certificate refused on jobs" in setup.gateway.logs()


def test_an_expired_certificate_is_refused(setup: Setup, backend: Backend) -> None:
    expired = setup.certificate(setup.apps, "expired-job", starts=-3 * DAY, ends=-DAY)
    with setup.client(expired) as client:
        response = get(client, "jobs.example", f"/mtls-{setup.kind}-expired")
    assert response.status_code == 403
    assert backend.received(f"/mtls-{setup.kind}-expired") == []


def test_other_hosts_never_see_a_certificate_request(setup: Setup, backend: Backend) -> None:
    # A client holding a certificate from the right CA sends it only when asked: on wiki's
    # host it is not asked, so wiki's request has no certificate identity (401, not signed in).
    certificate = setup.certificate(setup.apps, "wiki-job")
    with setup.client(certificate) as client:
        assert get(client, "wiki.example", f"/mtls-{setup.kind}-wiki").status_code == 401
    assert backend.received(f"/mtls-{setup.kind}-wiki") == []
    assert _asks_for_a_certificate(setup, "jobs.example")
    assert not _asks_for_a_certificate(setup, "wiki.example")


def test_a_request_on_a_connection_made_for_another_host_gets_421(
    setup: Setup, backend: Backend
) -> None:
    certificate = setup.certificate(setup.apps, "coalesced-job")
    # HTTP/1.1 keep-alive: one connection, made with SNI wiki.example (no certificate asked).
    with setup.client(certificate) as client:
        wiki = get(client, "wiki.example", f"/mtls-{setup.kind}-first")
        jobs = client.get(
            f"/mtls-{setup.kind}-misdirected", headers={"host": "jobs.example", "accept": BROWSER}
        )
    assert wiki.status_code == 401
    assert jobs.status_code == 421
    # HTTP/2 connection reuse, as a browser does for names one certificate holds (RFC 9113
    # §9.1.1): a stream for jobs on wiki's connection.
    h2_path = f"/mtls-{setup.kind}-h2"
    statuses = _h2_on_one_connection(
        setup, certificate, "wiki.example", ["wiki.example", "jobs.example"], h2_path
    )
    assert statuses == [401, 421]
    assert backend.received(f"/mtls-{setup.kind}-misdirected") == []
    assert backend.received(h2_path) == []
    # On a connection of its own, the same client gets in.
    with setup.client(certificate) as client:
        assert get(client, "jobs.example", f"/mtls-{setup.kind}-own").status_code == 200
    assert _h2_on_one_connection(setup, certificate, "jobs.example", ["jobs.example"], h2_path) == [
        200
    ]


def _h2_on_one_connection(
    setup: Setup, certificate: Path, sni: str, authorities: list[str], path: str
) -> list[int]:
    """The status of a GET for each authority, one after the other on one HTTP/2 connection."""
    context = ssl.create_default_context(cafile=str(setup.server_ca))
    context.load_cert_chain(certificate)
    context.set_alpn_protocols(["h2"])
    statuses: list[int] = []
    address = ("127.0.0.1", setup.gateway.port)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        for authority in authorities:
            stream = connection.get_next_available_stream_id()
            request = [(":method", "GET"), (":scheme", "https"), (":authority", authority)]
            request += [(":path", path), ("accept", "application/json")]
            connection.send_headers(stream, request, end_stream=True)
            tls.sendall(connection.data_to_send())
            status = 0
            ended = False
            while not ended:
                data = tls.recv(65536)
                assert data, "the gateway closed the connection"
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        connection.acknowledge_received_data(len(event.data), stream)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        ended = event.stream_id == stream
                tls.sendall(connection.data_to_send())
            statuses.append(status)
    return statuses


def test_a_client_ca_that_does_not_load_keeps_the_last_good_policy(
    setup: Setup, backend: Backend
) -> None:
    gateway = setup.gateway
    gateway.policy.write_text(policy(backend, client_ca="missing-ca.pem"))
    reload = subprocess.run(
        processes.warren("reload", "--config", str(gateway.config)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert reload.returncode == 1
    assert "resources.jobs.auth.client_ca" in reload.stderr
    assert "missing-ca.pem: cannot read" in reload.stderr
    certificate = setup.certificate(setup.apps, "still-job")
    with setup.client(certificate) as client:
        assert get(client, "jobs.example", f"/mtls-{setup.kind}-still").status_code == 200
    gateway.policy.write_text(policy(backend))
    eventually(lambda: "missing-ca" not in _status(gateway))


def _status(gateway: Gateway) -> str:
    done = subprocess.run(
        processes.warren("reload", "--config", str(gateway.config)),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr + ("" if done.returncode == 0 else "failed")


def _asks_for_a_certificate(setup: Setup, host: str) -> bool:
    """Whether the gateway's handshake for `host` carried a CertificateRequest, as openssl's
    client reports it (Python's ssl cannot tell)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if in_ci():
            raise RuntimeError("openssl is needed to see a CertificateRequest")
        pytest.skip("no openssl")
    done = subprocess.run(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{setup.gateway.port}",
            "-servername",
            host,
            "-CAfile",
            str(setup.server_ca),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "Verify return code: 0 (ok)" in output, output
    # openssl prints the algorithms a CertificateRequest asked for, and only when one came.
    return "Requested Signature Algorithms" in output


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_client_coming_back_with_its_tls_session_still_gets_in(
    setup: Setup, version: ssl.TLSVersion
) -> None:
    # OpenSSL fails a handshake that offers a session to resume on a connection asking for a
    # certificate, unless the server set a session id context (addons.clientcert).
    context = ssl.create_default_context(cafile=str(setup.server_ca))
    context.maximum_version = version
    context.load_cert_chain(setup.certificate(setup.apps, f"returning-{version.name}"))
    for first in ("wiki.example", "jobs.example"):
        session, status = _raw_get(setup, context, first)
        assert status == (401 if first == "wiki.example" else 200)
        assert _raw_get(setup, context, "jobs.example", session)[1] == 200, first


def _raw_get(
    setup: Setup, context: ssl.SSLContext, host: str, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSession | None, int]:
    address = ("127.0.0.1", setup.gateway.port)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host, session=session) as tls,
    ):
        request = f"GET /mtls-again HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
        tls.sendall(f"{request}Connection: close\r\n\r\n".encode())
        received = b""
        while chunk := tls.recv(65536):  # to the end: TLS 1.3 tickets come after the handshake
            received += chunk
        return tls.session, int(received.split(b" ", 2)[1])
