"""Brute-force regulation: a name and an address locked with escalating windows, an IPv6 client by
its network."""

import asyncio
from ipaddress import ip_address

import pytest

from core.auth.regulation import Regulation, parse_tiers
from core.ratelimit.counters import open_storage


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_regulation_locks_a_name_and_an_address_with_escalating_windows(
    storage: str, request: pytest.FixtureRequest
) -> None:
    uri = "memory://" if storage == "memory" else request.getfixturevalue("redis_url")

    async def scenario() -> None:
        regulation = Regulation(
            open_storage(uri), parse_tiers(["2/minute", "3/hour"]), parse_tiers(["5/minute"])
        )
        name = f"alice-{storage}"
        for _ in range(2):
            assert await regulation.locked(ip_address("192.0.2.1"), name) is None
            await regulation.failed(ip_address("192.0.2.1"), name)
        lockout = await regulation.locked(
            ip_address("192.0.2.2"), name.upper()
        )  # any address, any case
        assert lockout is not None
        assert lockout.reason == "name"
        assert 0 < lockout.retry_after <= 60
        assert await regulation.locked(ip_address("192.0.2.1"), "bob") is None
        for index in range(3):
            await regulation.failed(ip_address("192.0.2.9"), f"user{index}")
        assert await regulation.locked(ip_address("192.0.2.9"), "carol") is None
        for index in range(2):
            await regulation.failed(ip_address("192.0.2.9"), f"other{index}")
        address = await regulation.locked(ip_address("192.0.2.9"), "carol")
        assert address is not None
        assert address.reason == "address"

    asyncio.run(scenario())


@pytest.mark.parametrize(("prefix", "same", "other"), [
    (64, "2001:db8:1:2:ffff::9", "2001:db8:1:3::1"),
    (48, "2001:db8:1:ffff::9", "2001:db8:2::1"),
])  # fmt: skip
def test_regulation_counts_an_ipv6_client_by_its_network(
    prefix: int, same: str, other: str
) -> None:
    """Picking a new address inside the network for each attempt earns no new allowance."""

    async def scenario() -> None:
        regulation = Regulation(
            open_storage("memory://"),
            parse_tiers(["100/minute"]),
            parse_tiers(["3/minute"]),
            prefix,
        )
        for index in range(3):
            await regulation.failed(ip_address(f"2001:db8:1:2::{index + 1:x}"), f"user{index}")
        lockout = await regulation.locked(ip_address(same), "someone")
        assert lockout is not None
        assert lockout.reason == "address"
        assert await regulation.locked(ip_address(other), "someone") is None

    asyncio.run(scenario())
