"""Compiled rate limits: the counters each limit counts in, named so that they survive edits, and what each applies to."""

from core.policy.check import Capabilities
from core.policy.load import parse_policy
from tests.support.ratelimits import POLICY


def test_a_policy_with_limits_checks_and_compiles() -> None:
    policy = parse_policy(POLICY, Capabilities())
    app_limits = policy.resources["app"].rate_limits
    assert [limit.key for limit in app_limits] == [
        "rate_limits[0]",
        "resources.app.rate_limits[0]",
        "resources.app.rate_limits[1]",
        "resources.app.rate_limits[2]",
    ]
    keyed = app_limits[1]
    assert [(i.amount, i.get_expiry()) for i in keyed.rate.items] == [(10, 1), (500, 3600)]
    assert (keyed.rate.strategy, keyed.on_storage_error, keyed.headers) == (
        "sliding",
        "open",
        False,
    )
    assert keyed.applies("/api/v1/x", "GET")
    assert not keyed.applies("/web", "GET")
    login = app_limits[2]
    assert login.applies("/login", "POST")
    assert not login.applies("/login", "GET")
    # Raw resources count connections against their own limits only.
    assert [limit.key for limit in policy.resources["game"].rate_limits] == [
        "resources.game.rate_limits[0]"
    ]


def test_counters_keep_their_names_when_other_limits_move_or_the_file_changes() -> None:
    before = parse_policy(POLICY, Capabilities())
    edited = POLICY.replace(
        '    rate_limits:\n      - {limit: "10/second',
        '    rate_limits:\n      - {limit: 7/minute, per: user}\n      - {limit: "10/second',
    )
    after = parse_policy(edited, Capabilities())
    assert before.digest != after.digest
    old = {limit.key: limit.counter for limit in before.resources["app"].rate_limits}
    new = {limit.key: limit.counter for limit in after.resources["app"].rate_limits}
    assert new["resources.app.rate_limits[1]"] == old["resources.app.rate_limits[0]"]
    assert new["resources.app.rate_limits[3]"] == old["resources.app.rate_limits[2]"]
    assert new["rate_limits[0]"] == old["rate_limits[0]"]
    # What a limit counts is part of its name; where it is and how it reports are not.
    anywhere = parse_policy(POLICY.replace(", path: /login", ""), Capabilities())
    assert anywhere.resources["app"].rate_limits[2].counter != old["resources.app.rate_limits[1]"]
    quiet = parse_policy(POLICY.replace("headers: true", "headers: false"), Capabilities())
    assert quiet.resources["app"].rate_limits[2].counter == old["resources.app.rate_limits[1]"]


def test_global_and_resource_counters_are_apart() -> None:
    policy = parse_policy(
        POLICY.replace("- {limit: 100/minute, per: resource", "- {limit: 1000/hour, per: ip"),
        Capabilities(),
    )
    limits = policy.resources["app"].rate_limits
    assert limits[0].counter.startswith("*/")
    assert limits[3].counter.startswith("app/")
    assert limits[0].counter.split("/")[1] == limits[3].counter.split("/")[1]
