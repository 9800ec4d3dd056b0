"""`rate_limits` in policy.yaml: validation at the key to fix, warnings, compiled counters that
survive edits, `warren explain`, and the `storage` setting."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.problems import ConfigError
from core.settings import load_settings

runner = CliRunner()

POLICY = """\
version: 1
rate_limits:
  - {limit: 1000/hour, per: ip}
resources:
  app:
    host: app.example
    auth: public
    targets: [{host: 127.0.0.1, port: 3000}]
    rules:
      - {action: deny, path: "/admin/*"}
    rate_limits:
      - {limit: "10/second;500/hour", per: header:X-Api-Key, path: "/api/**"}
      - {limit: 5 per minute, method: POST, path: /login, strategy: moving, headers: true}
      - {limit: 100/minute, per: resource, on_storage_error: closed}
  game:
    protocol: tcp
    port: 25565
    targets: [{host: 127.0.0.1, port: 25565}]
    rate_limits:
      - {limit: 10/minute, per: ip}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    result = runner.invoke(app, ["check", str(write(tmp_path, text))])
    return result.exit_code, result.output


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


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "message"),
    [
        (
            "limit: 1000/hour",
            "limit: 1000/hr",
            3,
            "rate_limits[0].limit",
            "'1000/hr' is not a rate limit like 100/minute",
        ),
        ("limit: 1000/hour", "limit: 0/hour", 3, "rate_limits[0].limit", "'0/hour' allows nothing"),
        (
            "per: header:X-Api-Key",
            "per: header:X-Real-IP",
            12,
            "resources.app.rate_limits[0].per",
            "x-real-ip is set by clients at will",
        ),
        (
            "strategy: moving",
            "strategy: leaky",
            13,
            "resources.app.rate_limits[1].strategy",
            "Input should be 'fixed', 'moving' or 'sliding'",
        ),
        (
            "on_storage_error: closed",
            "on_storage_error: ignore",
            14,
            "resources.app.rate_limits[2].on_storage_error",
            "Input should be 'open' or 'closed'",
        ),
        (
            'path: "/api/**"',
            'path: "api"',
            12,
            "resources.app.rate_limits[0].path[0]",
            "a path pattern starts with /",
        ),
        (
            "method: POST",
            "method: P0ST",
            13,
            "resources.app.rate_limits[1].method[0]",
            "'P0ST' is not an HTTP method",
        ),
        (
            "per: resource,",
            "per: resource, burst: 3,",
            14,
            "resources.app.rate_limits[2].burst",
            "unknown key",
        ),
        (
            "      - {limit: 10/minute, per: ip}",
            "      - {limit: 10/minute, per: user, path: /x}",
            20,
            "resources.game.rate_limits[0].per",
            "a tcp resource limits connections per ip or per resource",
        ),
        (
            "      - {limit: 10/minute, per: ip}",
            "      - {limit: 10/minute, per: user, path: /x}",
            20,
            "resources.game.rate_limits[0].path",
            "a tcp resource has no path to match",
        ),
        (
            "      - {limit: 100/minute, per: resource, on_storage_error: closed}",
            "      - {limit: 100/minute, per: resource}\n      - {limit: 100 / minute, per: resource}",
            15,
            "resources.app.rate_limits[3]",
            "the same limit as resources.app.rate_limits[2]: each request would count twice",
        ),
    ],
)
def test_check_names_the_key_and_line_of_each_mistake(
    tmp_path: Path, old: str, new: str, line: int, where: str, message: str
) -> None:
    assert old in POLICY
    code, output = check(tmp_path, POLICY.replace(old, new))
    assert code == 1
    assert f"policy.yaml:{line}: {where}: {message}" in output, output


def test_per_user_is_a_warning_until_sign_in_exists(tmp_path: Path) -> None:
    text = POLICY.replace("per: header:X-Api-Key", "per: user")
    code, output = check(tmp_path, text)
    assert code == 0, output
    assert (
        "warning: " + str(tmp_path / "policy.yaml") + ":12: resources.app.rate_limits[0].per: "
        "per: user counts each client IP instead until sign-in is configured" in output
    )
    from core.ratelimit.check import rate_limit_warnings

    policy = parse_policy(text, Capabilities())
    assert rate_limit_warnings(policy.model, sign_in=True) == []
    # The same through warren.yaml, which checks its policy.
    settings = write(tmp_path, "policy_file: policy.yaml\n", "warren.yaml")
    result = runner.invoke(app, ["check", str(settings)])
    assert result.exit_code == 0
    assert "warning: " in result.output
    assert "rate_limits[0].per" in result.output


def test_explain_lists_the_limits_a_request_counts_against(tmp_path: Path) -> None:
    policy = write(tmp_path, POLICY)
    result = runner.invoke(
        app,
        ["explain", str(policy), "--host", "app.example", "--path", "/login", "--method", "post"],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("limit ")]
    assert lines == [
        "limit     rate_limits[0]  1000/hour per ip (sliding window, on storage error: open); "
        "counts ip:203.0.113.10",
        "limit     resources.app.rate_limits[1]  5 per minute per ip, POST on /login "
        "(moving window, on storage error: open); counts ip:203.0.113.10",
        "limit     resources.app.rate_limits[2]  100/minute per resource "
        "(sliding window, on storage error: closed); counts resource:app",
    ]
    as_json = runner.invoke(
        app, ["explain", str(policy), "--host", "app.example", "--path", "/api/x", "--json"]
    )
    limits = json.loads(as_json.output)["rate_limits"]
    assert [line.split()[0] for line in limits] == [
        "rate_limits[0]",
        "resources.app.rate_limits[0]",
        "resources.app.rate_limits[2]",
    ]
    assert "(a request with x-api-key counts per value)" in limits[1]
    # A request the rules refuse never reaches the limits.
    denied = runner.invoke(
        app, ["explain", str(policy), "--host", "app.example", "--path", "/admin/x", "--json"]
    )
    assert json.loads(denied.output)["rate_limits"] == []


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("mongodb://db:27017", "is not a storage Warren supports"),
        ("redis+sentinel://s1:26379,s2:26379", "needs the sentinel service name"),
        ("redis://", "needs HOST or HOST:PORT"),
        ("redis://db:99999/0", "needs HOST or HOST:PORT"),
        ("redis://:hunter2@db:6379/0", None),
        ("valkey://db", None),
    ],
)
def test_storage_urls_are_checked(tmp_path: Path, storage: str, message: str | None) -> None:
    path = write(tmp_path, f"storage: {storage}\n", "warren.yaml")
    if message is None:
        assert load_settings(path).storage == storage
        return
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(path)
    assert "storage" in str(raised.value)


@pytest.mark.parametrize(
    "storage",
    [
        "memory://",
        "redis://127.0.0.1:6379/0",
        "rediss://:pw@redis.example:6380/1",
        "redis+unix:///run/redis.sock?db=0",
        "redis+sentinel://s1:26379,s2:26379/mymaster",
        "valkey://127.0.0.1:6379/0",
        "valkeys://valkey.example",
        "valkey+sentinel://s1:26379/mymaster",
    ],
)
def test_documented_storage_urls_open_a_limits_storage(storage: str) -> None:
    from limits.aio.storage import MemoryStorage, RedisStorage

    from core.storage import check_storage_url, open_storage

    opened = open_storage(check_storage_url(storage))
    assert isinstance(opened, MemoryStorage if storage == "memory://" else RedisStorage)


def test_passwords_never_appear_in_messages() -> None:
    from core.storage import check_storage_url, redact

    assert redact("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert redact("rediss://warren:hunter2@db") == "rediss://warren:***@db"
    with pytest.raises(ValueError, match="not a storage") as raised:
        check_storage_url("mongo://u:hunter2@db")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("redis://:secret@127.0.0.1/2", ("127.0.0.1", 6379, 2)),
        ("valkey://127.0.0.1:6380/0", ("127.0.0.1", 6380, 0)),
        ("rediss://127.0.0.1:6390", ("127.0.0.1", 6390, 0)),
    ],
)
def test_sign_in_state_and_counters_read_the_same_url(
    url: str, where: tuple[str, int, int]
) -> None:
    from core.storage import redis_client

    client = redis_client(url)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs.get("db", 0)) == where


def test_a_unix_socket_and_a_sentinel_are_clients_too() -> None:
    from redis.asyncio.sentinel import SentinelConnectionPool

    from core.storage import redis_client

    unix = redis_client("redis+unix:///run/redis.sock?db=3")
    assert unix.connection_pool.connection_kwargs["path"] == "/run/redis.sock"
    assert unix.connection_pool.connection_kwargs["db"] == 3
    sentinel = redis_client("valkey+sentinel://10.0.0.1,10.0.0.2:26380/main")
    assert isinstance(sentinel.connection_pool, SentinelConnectionPool)
    assert sentinel.connection_pool.service_name == "main"
