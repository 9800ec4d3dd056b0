"""Talking to an ACME CA (RFC 8555) through certbot's `acme` package: the account, an order,
the challenges it asks for, finalizing and downloading the chain.

The package is synchronous (requests); `core.acme.issue` runs these calls in a thread and
publishes the challenges itself, between `order` and `complete`, from the event loop.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from acme import challenges, client, errors, messages
from acme.crypto_util import make_csr
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwa import ES256, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from core.acme.plan import Challenge

USER_AGENT = "warren (acme-python)"
ORDER_SECONDS = 180  # answering, validation and issuance, before the attempt counts as failed
_TIMEOUT = 30  # one request to the CA


class OrderFailed(Exception):
    """One line: which name, which challenge, and the CA's problem document (RFC 8555 §6.7)."""


@dataclass(frozen=True, slots=True)
class Task:
    """One challenge to publish before the CA is asked to look."""

    identifier: str  # the name the CA validates (a wildcard's without `*.`)
    kind: Challenge
    token: str  # http-01: the token in the path; dns-01: the TXT record's name
    value: str  # http-01: the key authorization (§8.1, §8.3); dns-01: its digest (§8.4)
    body: messages.ChallengeBody


@dataclass(frozen=True, slots=True)
class Order:
    resource: messages.OrderResource
    tasks: tuple[Task, ...]


def new_key() -> bytes:
    """A P-256 key (the account's, or a certificate's), PKCS#8 PEM."""
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class AcmeClient:
    def __init__(self, acme: client.ClientV2, key: JWK) -> None:
        self._acme = acme
        self._key = key

    @classmethod
    def open(
        cls, directory: str, ca_bundle: Path | None, account_key: bytes, email: str | None
    ) -> "AcmeClient":
        """The directory (§7.1.1), then the account: created, or found by its key (§7.3.1)."""
        key, alg = _jwk(account_key)
        # requests' `verify` takes a CA bundle's path as well as a bool.
        verify = cast(bool, str(ca_bundle)) if ca_bundle is not None else True
        net = client.ClientNetwork(
            key, alg=alg, verify_ssl=verify, user_agent=USER_AGENT, timeout=_TIMEOUT
        )
        try:
            acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
            registration = messages.NewRegistration.from_data(
                email=email, terms_of_service_agreed=True
            )
            try:
                acme.new_account(registration)
            except errors.ConflictError as existing:  # §7.3.1: 200 and the account's URL
                net.account = messages.RegistrationResource(
                    body=messages.Registration(), uri=existing.location
                )
        except Exception as error:
            raise OrderFailed(f"account at {directory}: {describe(error)}") from error
        return cls(acme, key)

    def order(self, names: tuple[str, ...], kind: Challenge, certificate_key: bytes) -> Order:
        try:
            resource = self._acme.new_order(make_csr(certificate_key, list(names)))
        except Exception as error:
            raise OrderFailed(f"{', '.join(names)}: new order: {describe(error)}") from error
        tasks = []
        for authorization in resource.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # §7.1.4: an authorization the account already holds is reused
            tasks.append(self._task(authorization.body, kind))
        return Order(resource, tuple(tasks))

    def complete(self, order: Order) -> str:
        """Answer the published challenges, wait for the CA's verdict, finalize, download the
        chain (leaf first, §7.4.2); OrderFailed says what the CA said."""
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_SECONDS)
        try:
            for task in order.tasks:
                response, _ = task.body.chall.response_and_validation(self._key)
                self._acme.answer_challenge(task.body, response)
            resource = self._acme.poll_authorizations(order.resource, deadline)
            resource = self._acme.finalize_order(resource, deadline)
        except errors.ValidationError as failed:
            raise OrderFailed(_failed_authorizations(failed)) from failed
        except Exception as error:
            raise OrderFailed(f"{_names(order)}: {describe(error)}") from error
        return str(resource.fullchain_pem)

    def _task(self, authorization: messages.Authorization, kind: Challenge) -> Task:
        name = str(authorization.identifier.value)
        wanted = challenges.HTTP01 if kind == "http-01" else challenges.DNS01
        for body in authorization.challenges:
            chall = body.chall
            if isinstance(chall, wanted):
                if isinstance(chall, challenges.HTTP01):
                    token = chall.encode("token")
                else:
                    token = chall.validation_domain_name(name)
                return Task(name, kind, token, str(chall.validation(self._key)), body)
        offered = ", ".join(str(body.chall.typ) for body in authorization.challenges)
        raise OrderFailed(f"{name}: the CA offers no {kind} challenge (only {offered})")


def describe(error: BaseException) -> str:
    """The CA's problem document as `type: detail` (RFC 8555 §6.7), or what went wrong."""
    if isinstance(error, messages.Error):
        return f"{error.typ}: {error.detail or error.title or error.description or ''}".strip()
    if isinstance(error, errors.IssuanceError):
        return describe(error.error)
    if isinstance(error, errors.TimeoutError):
        return f"the CA did not finish within {ORDER_SECONDS}s"
    return str(error) or type(error).__name__


def _failed_authorizations(failed: errors.ValidationError) -> str:
    reasons = []
    for authorization in failed.failed_authzrs:
        body = authorization.body
        name = ("*." if body.wildcard else "") + str(body.identifier.value)
        for challenge in body.challenges:
            if challenge.error is not None:
                reasons.append(f"{name}: {challenge.chall.typ}: {describe(challenge.error)}")
    return "; ".join(reasons)


def _names(order: Order) -> str:
    return ", ".join(str(i.value) for i in order.resource.body.identifiers)


def _jwk(pem: bytes) -> tuple[JWK, JWASignature]:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return JWKEC(key=key), ES256
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256
    raise OrderFailed("the account key is neither EC nor RSA")
