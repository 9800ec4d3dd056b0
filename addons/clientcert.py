"""Mutual TLS for resources with `auth: {client_ca: FILE}`: the handshake asks for a client
certificate on their host names only, and each request is checked against its own resource's
CA (core.clientcerts).

The handshake accepts any certificate, or none, so that a client without the right one gets a
readable answer (sign-in, 401, 403) rather than a TLS alert; the proof is decided per request,
because with HTTP/2 connection reuse (RFC 9113 §9.1.1) one connection may carry requests for
several host names. A request whose connection was not made for its resource — its SNI names
another host, so no certificate was asked for this one, or the certificate sent does not fit —
gets 421 Misdirected Request (RFC 9110 §15.5.20), which tells the client to retry on a
connection of its own.
"""

import datetime
import logging
import time
from typing import Any

from cryptography import x509
from mitmproxy import ctx, http, tls
from mitmproxy.connection import Client
from OpenSSL import SSL

from addons.exchange import Exchange
from addons.respond import refuse
from addons.runtime import RuntimeSlot
from core.auth.identity import Identity
from core.clientcerts import CertificateRefused, ClientCa

log = logging.getLogger("warren.auth")

# How long a chain's check is reused on its connection before it is made again (the clock
# moves: a certificate expires while a connection stays open).
_RECHECK_SECONDS = 60.0
_CACHE_LIMIT = 10_000
_SESSION_CONTEXT = b"warren"
# RFC 8176 §2: proof of possession of a key held in software (Warren cannot tell a key in a
# token or TPM from one in a file, so it never claims "hwk").
CERTIFICATE_AMR = ("swk",)


class ClientCertificateRequest:
    """The TLS half: after mitmproxy's TlsConfig made the connection, ask this client for a
    certificate when its SNI names a resource with a client CA."""

    def __init__(self, slot: RuntimeSlot) -> None:
        self.slot = slot

    def tls_start_client(self, tls_start: tls.TlsData) -> None:
        if tls_start.ssl_conn is None:
            # Under mitmdump, scripts come before TlsConfig in the chain: have it make the
            # connection now, as it would; its own call then finds it made and keeps it.
            tlsconfig = ctx.master.addons.get("tlsconfig")
            if tlsconfig is not None:
                tlsconfig.tls_start_client(tls_start)
        connection = tls_start.ssl_conn
        if connection is None:  # no TLS addon: nothing asks, nothing gets in
            log.warning("no TLS connection to ask for a client certificate on")
            return
        _set_session_context(connection.get_context())
        runtime = self.slot.runtime
        sni = tls_start.context.client.sni
        if runtime is None or sni is None:
            return
        resource = runtime.policy.resource_for(sni)
        if resource is None or resource.client_ca is None:
            return
        connection.set_verify(SSL.VERIFY_PEER, _accept_any)
        # Resumed only from the server's own session cache, which keeps the chain the client
        # sent (a ticket keeps the leaf alone, and would lose the intermediates), and never
        # from a ticket another host's connection was given, made without a certificate.
        connection.set_options(SSL.OP_NO_TICKET)


def _set_session_context(context: SSL.Context) -> None:
    """OpenSSL refuses to resume a session on a connection that verifies its peer unless a
    session id context is set ("session id context uninitialized": every browser coming back
    would fail its handshake). mitmproxy makes one Context per certificate, shares it across
    host names, and SSL_new copies the id from it: set on every connection's Context, a Context
    has it before a second connection, the first that could resume a session of its, is made.
    pyOpenSSL allows it only on a Context not yet used, hence OpenSSL's call, as mitmproxy
    makes its own (net/tls.py)."""
    lib: Any = SSL._lib  # type: ignore[attr-defined]
    ok = lib.SSL_CTX_set_session_id_context(
        context._context, _SESSION_CONTEXT, len(_SESSION_CONTEXT)
    )
    if ok != 1:
        raise SSL.Error("SSL_CTX_set_session_id_context failed")


def _accept_any(
    _connection: SSL.Connection, _certificate: object, _error: int, _depth: int, _ok: int
) -> bool:
    return True  # decided per request, against the request's resource (CertificateSignIn)


class CertificateSignIn:
    """The request half: who the connection's certificate proves, for this request's resource."""

    def __init__(self) -> None:
        self._checked: dict[tuple[str, ClientCa], tuple[float, Identity | CertificateRefused]] = {}

    def identity(self, flow: http.HTTPFlow, exchange: Exchange) -> Identity | None:
        """The certificate's identity; None when the client sent none on a connection made for
        this resource (sign-in goes on as without mTLS); or a refusal: 421 when the connection
        was made for another host, 403 for a certificate that does not fit."""
        resource = exchange.resource
        ca = resource.client_ca
        client = flow.client_conn
        if ca is None or not client.tls_established:
            return None  # no TLS, no certificate: never taken from a header a proxy set
        asked = exchange.policy.resource_for(client.sni) if client.sni else None
        misdirected = asked is None or asked.name != resource.name
        if not client.certificate_list:
            if misdirected:
                self._misdirected(flow, "no client certificate was asked for on this connection")
            return None
        checked = self._check(client, ca)
        if isinstance(checked, Identity):
            return checked
        if misdirected:
            self._misdirected(flow, str(checked))
            return None
        refuse(
            flow,
            403,
            detail="Your client certificate does not open this application: it was not issued "
            "by the authority this application trusts, or it expired.",
            reason=f"client certificate refused on {resource.name}: {checked}",
        )
        return None

    def _check(self, client: Client, ca: ClientCa) -> Identity | CertificateRefused:
        now = time.time()
        key = (client.id, ca)
        cached = self._checked.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        chain = [certificate.to_cryptography() for certificate in client.certificate_list]
        result = _verified(chain, ca, now)
        until = now + _RECHECK_SECONDS
        if isinstance(result, Identity):
            until = min(until, result.expires)
        if len(self._checked) > _CACHE_LIMIT:
            self._checked.clear()
        self._checked[key] = (until, result)
        return result

    def _misdirected(self, flow: http.HTTPFlow, why: str) -> None:
        refuse(
            flow,
            421,
            detail="This connection was made for another host name. Connect again for this one.",
            reason=f"client certificate: misdirected request ({why})",
        )


def _verified(
    chain: list[x509.Certificate], ca: ClientCa, now: float
) -> Identity | CertificateRefused:
    try:
        name = ca.subject_of(chain, datetime.datetime.fromtimestamp(now, datetime.UTC))
    except CertificateRefused as refused:
        return refused
    return Identity(
        subject=f"cert:{name}",
        method="certificate",
        expires=chain[0].not_valid_after_utc.timestamp(),
        issued_at=now,
        amr=CERTIFICATE_AMR,
    )
