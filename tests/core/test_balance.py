from core.balance import EJECT_FIRST, EJECT_MAX, Upstreams, target_key, target_states
from core.ipsets import parse_address
from core.policy.check import Capabilities
from core.policy.compiled import CompiledResource
from core.policy.load import parse_policy
from core.policy.model import Target


def resource(balance: str) -> CompiledResource:
    policy = parse_policy(
        f"""
version: 1
resources:
  app:
    host: app.example
    balance: {balance}
    targets: [{{host: 127.0.0.1, port: 1}}, {{host: 127.0.0.1, port: 2}}, {{host: 127.0.0.1, port: 3}}]
""",
        Capabilities(),
    )
    return policy.resources["app"]


CLIENT = parse_address("203.0.113.5")


def port(target: Target | None) -> int:
    assert target is not None
    return target.port


def test_round_robin_skips_targets_that_are_down() -> None:
    app = resource("round_robin")
    upstreams = Upstreams()
    assert [port(upstreams.pick(app, CLIENT)) for _ in range(4)] == [1, 2, 3, 1]
    upstreams.set_health(target_key(app.targets[1]), False)
    assert {port(upstreams.pick(app, CLIENT)) for _ in range(4)} == {1, 3}
    for target in app.targets:
        upstreams.set_health(target_key(target), False)
    assert upstreams.pick(app, CLIENT) is None


def test_least_conn_prefers_the_idlest_target() -> None:
    app = resource("least_conn")
    upstreams = Upstreams()
    first = upstreams.pick(app, CLIENT)
    assert first is not None
    upstreams.started(target_key(first))
    second = upstreams.pick(app, CLIENT)
    assert second is not None
    assert second != first
    upstreams.finished(target_key(first))
    assert upstreams.active(target_key(first)) == 0


def test_sticky_keeps_a_client_on_one_target() -> None:
    app = resource("sticky")
    upstreams = Upstreams()
    picks = {upstreams.pick(app, CLIENT) for _ in range(10)}
    assert len(picks) == 1
    spread = {upstreams.pick(app, parse_address(f"203.0.113.{i}")) for i in range(50)}
    assert len(spread) == 3


def test_target_states_say_what_the_gateway_routes_to_now() -> None:
    policy = parse_policy(
        """
version: 1
sites:
  home: {secret_sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
resources:
  app:
    host: app.example
    health: {path: /health}
    targets: [{host: 127.0.0.1, port: 1}, {host: 127.0.0.1, port: 2}]
  nas:
    host: nas.example
    targets: [{site: home, host: 127.0.0.1, port: 5000}]
""",
        Capabilities(),
    )
    upstreams = Upstreams()
    app = policy.resources["app"].targets
    nas = policy.resources["nas"].targets[0]
    upstreams.set_health(target_key(app[1]), False)
    upstreams.set_unroutable(frozenset({target_key(nas)}))
    upstreams.started(target_key(app[0]))
    assert target_states(policy, upstreams) == [
        {"resource": "app", "site": None, "target": "http://127.0.0.1:1", "checked": True,
         "state": "up", "active": 1},
        {"resource": "app", "site": None, "target": "http://127.0.0.1:2", "checked": True,
         "state": "down", "active": 0},
        {"resource": "nas", "site": "home", "target": "http://127.0.0.1:5000", "checked": False,
         "state": "unroutable", "active": 0},
    ]  # fmt: skip


def test_a_route_balances_its_own_targets_with_its_own_turn() -> None:
    policy = parse_policy(
        """
version: 1
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 1}, {host: 127.0.0.1, port: 2}]
    routes:
      - {path: "/api/*", targets: [{host: 127.0.0.1, port: 7}, {host: 127.0.0.1, port: 8}]}
""",
        Capabilities(),
    )
    app = policy.resources["app"]
    route = app.routes.choose("/api/x")
    assert route is not None
    upstreams = Upstreams()
    picks = [port(upstreams.pick(app, CLIENT, route)) for _ in range(3)]
    assert [*picks, port(upstreams.pick(app, CLIENT))] == [7, 8, 7, 1]
    upstreams.set_health(target_key(route.targets[0]), False)
    assert {port(upstreams.pick(app, CLIENT, route)) for _ in range(3)} == {8}
    listed = [state["target"] for state in target_states(policy, upstreams)]
    assert listed == [f"http://127.0.0.1:{n}" for n in (1, 2, 7, 8)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_target_that_failed_to_connect_is_passed_over_until_its_back_off_is_over() -> None:
    app, clock = resource("round_robin"), Clock()
    upstreams = Upstreams(clock)
    two = target_key(app.targets[1])
    upstreams.connect_failed(two)
    assert upstreams.state(two) == "ejected"
    assert {port(upstreams.pick(app, CLIENT)) for _ in range(6)} == {1, 3}
    clock.now += EJECT_FIRST
    picks = [port(upstreams.pick(app, CLIENT)) for _ in range(6)]
    assert picks.count(2) == 1  # one trial request, the others keep passing it over
    upstreams.answered(two)
    assert upstreams.state(two) == "up"
    assert {port(upstreams.pick(app, CLIENT)) for _ in range(6)} == {1, 2, 3}


def test_the_back_off_doubles_while_the_target_keeps_failing_up_to_a_limit() -> None:
    app, clock = resource("round_robin"), Clock()
    upstreams = Upstreams(clock)
    one = target_key(app.targets[0])
    periods = []
    for _ in range(6):
        upstreams.connect_failed(one)
        start = clock.now
        while upstreams.is_ejected(one):
            clock.now += 1
        periods.append(clock.now - start)
    assert periods == [EJECT_FIRST, 2 * EJECT_FIRST, 4 * EJECT_FIRST, 8 * EJECT_FIRST, EJECT_MAX,
                       EJECT_MAX]  # fmt: skip


def test_when_every_target_is_ejected_they_are_all_still_tried() -> None:
    app, upstreams = resource("round_robin"), Upstreams(Clock())
    for target in app.targets:
        upstreams.connect_failed(target_key(target))
    assert upstreams.pick(app, CLIENT) is not None  # a preference, never a refusal


def test_a_retry_never_picks_the_target_that_failed() -> None:
    app, upstreams = resource("round_robin"), Upstreams(Clock())
    first, second, *others = (target_key(target) for target in app.targets)
    upstreams.connect_failed(first)
    for other in others:
        upstreams.set_health(other, False)
    for _ in range(4):
        assert port(upstreams.pick(app, CLIENT, without=first)) == 2
    upstreams.set_health(second, False)
    assert upstreams.pick(app, CLIENT, without=first) is None
