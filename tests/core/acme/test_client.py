"""The ACME client (core.acme.client) against a real Pebble, without a gateway: accounts,
orders and the challenges they ask for, and what a failure says."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.acme.client import AcmeClient, OrderFailed, new_key
from core.acme.tokens import TOKEN
from demo import processes
from tests.support.pebble import Pebble, require_pebble


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    require_pebble()
    # HTTP-01 validation goes to a closed port: nothing answers for these names.
    directory = tmp_path_factory.mktemp("pebble")
    running = Pebble(directory, http_port=processes.free_port()).start()
    yield running
    running.stop()


def open_client(pebble: Pebble, key: bytes | None = None) -> AcmeClient:
    return AcmeClient.open(pebble.url, pebble.ca_bundle, key or new_key(), "admin@warren.test")


def test_an_account_is_made_once_then_found_by_its_key(pebble: Pebble) -> None:
    key = new_key()
    open_client(pebble, key)
    again = AcmeClient.open(pebble.url, pebble.ca_bundle, key, None)  # RFC 8555 §7.3.1
    assert again.order(("found.warren.test",), "http-01", new_key()).tasks


def test_an_http_01_order_asks_for_a_token_and_its_key_authorization(pebble: Pebble) -> None:
    order = open_client(pebble).order(("app.warren.test",), "http-01", new_key())
    (task,) = order.tasks
    assert (task.identifier, task.kind) == ("app.warren.test", "http-01")
    assert TOKEN.fullmatch(task.token)
    token, dot, thumbprint = task.value.partition(".")  # §8.1: token "." thumbprint
    assert (token, dot) == (task.token, ".")
    assert len(thumbprint) == 43


def test_a_wildcard_is_validated_as_a_txt_record_under_its_parent(pebble: Pebble) -> None:
    order = open_client(pebble).order(("*.apps.warren.test",), "dns-01", new_key())
    (task,) = order.tasks
    assert (task.identifier, task.kind) == ("apps.warren.test", "dns-01")
    assert task.token == "_acme-challenge.apps.warren.test"  # §8.4
    assert len(task.value) == 43  # base64url of a SHA-256 digest


def test_a_failed_validation_says_the_name_the_challenge_and_the_cas_problem(
    pebble: Pebble,
) -> None:
    client = open_client(pebble)
    order = client.order(("nobody.warren.test",), "http-01", new_key())
    with pytest.raises(OrderFailed) as failed:
        client.complete(order)  # nothing published, nothing listening
    assert str(failed.value).startswith(
        "nobody.warren.test: http-01: urn:ietf:params:acme:error:connection: "
    )


def test_a_ca_that_does_not_answer_or_is_not_trusted_is_one_line_naming_it(
    pebble: Pebble, tmp_path: Path
) -> None:
    closed = f"https://127.0.0.1:{processes.free_port()}/dir"
    with pytest.raises(OrderFailed, match=f"^account at {closed}: "):
        AcmeClient.open(closed, pebble.ca_bundle, new_key(), None)
    with pytest.raises(OrderFailed, match="CERTIFICATE_VERIFY_FAILED"):
        AcmeClient.open(pebble.url, None, new_key(), None)  # the system's CAs know no Pebble
