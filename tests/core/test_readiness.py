"""What /.warren/readyz decides (core.readiness), check by check."""

import asyncio

from core import readiness
from core.readiness import OK, SKIPPED


def test_the_interface_check_asks_the_kernel_of_this_namespace() -> None:
    assert readiness.interface_up("lo")
    assert not readiness.interface_up("warren-none0")
    assert readiness.tunnel_check("warren-none0", uses_sites=False) == SKIPPED
    assert readiness.tunnel_check("warren-none0", uses_sites=True) == "interface down"
    assert readiness.tunnel_check("lo", uses_sites=True) == OK


def test_one_site_online_is_enough_and_none_is_counted_not_named() -> None:
    assert readiness.sites_check([], ["home"]) == SKIPPED
    assert readiness.sites_check(["home", "office"], ["office"]) == OK
    assert readiness.sites_check(["home", "office"], []) == "none of 2 online"


def test_storage_that_does_not_answer_in_time_is_unreachable_but_not_unready() -> None:
    async def answers() -> bool:
        return True

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    async def fails() -> bool:
        raise ConnectionError("refused")

    async def checks() -> list[str]:
        return [
            await readiness.storage_check(False, fails),
            await readiness.storage_check(True, answers),
            await readiness.storage_check(True, hangs, timeout=0.05),
            await readiness.storage_check(True, fails),
        ]

    local, up, slow, down = asyncio.run(checks())
    assert (local, up) == (SKIPPED, OK)
    assert slow == down == "unreachable: serving in its fail mode"
    found = readiness.assess(policy=OK, storage=down, tunnel=OK, sites=OK)
    assert found.ready
    assert found.as_dict()["status"] == "ok"


def test_ready_only_when_policy_tunnel_and_sites_hold() -> None:
    assert readiness.assess(policy=OK, storage=SKIPPED, tunnel=SKIPPED, sites=SKIPPED).ready
    down = readiness.assess(policy=OK, storage=OK, tunnel="interface down", sites=OK)
    assert not down.ready
    assert down.as_dict() == {
        "status": "not ready",
        "checks": {"policy": OK, "storage": OK, "tunnel": "interface down", "sites": OK},
    }
    assert not readiness.assess(policy=OK, storage=OK, tunnel=OK, sites="none of 1 online").ready
    assert readiness.alive().as_dict() == {"status": "ok", "checks": {"gateway": "ok"}}
