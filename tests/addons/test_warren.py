"""`mitmdump -s addons/warren.py` (addons.warren) loads the whole pack as the README shows: a real
mitmdump in front of a real backend routes, refuses, decides geo rules and rate limits as
`warren gateway` does (the same checks as tests/addons/test_gateway.py, test_rules.py and
test_ratelimit.py make of that one)."""

from pathlib import Path

import pytest

from tests.addons import test_gateway, test_ratelimit, test_rules
from tests.support.backend import Backend
from tests.support.gateway import Gateway, GatewayFactory


@pytest.fixture(scope="module")
def mitmdump(backend: Backend, start_module_gateway: GatewayFactory) -> Gateway:
    return start_module_gateway(test_gateway.policy(backend), kind="mitmdump")


def test_routes_by_host_with_the_clients_host_and_gateway_set_forwarding(
    mitmdump: Gateway, backend: Backend
) -> None:
    test_gateway.routes_by_host(mitmdump, backend)


def test_refusals_are_answered_by_the_gateway_and_nothing_is_forwarded(
    mitmdump: Gateway, backend: Backend
) -> None:
    test_gateway.refusals_are_answered(mitmdump, backend)


def test_country_and_asn_rules_decide_by_the_forwarded_client(
    tmp_path: Path, backend: Backend, start_gateway: GatewayFactory
) -> None:
    _directory, settings = test_rules.databases(tmp_path)
    gateway = start_gateway(test_rules.policy(backend), settings=settings, kind="mitmdump")
    test_rules.country_and_asn_decide(gateway)


def test_over_the_limit_is_429_with_headers_and_nothing_is_forwarded(
    backend: Backend, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(test_ratelimit.limited_policy(backend), kind="mitmdump")
    test_ratelimit.over_the_limit_is_429(gateway, backend)
