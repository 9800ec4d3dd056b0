"""A resource's routes (core.policy.routes): which route serves a path, what its target gets,
and which routes `warren check` refuses."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.explain import explain
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.model import Resource, Rewrite, Route
from core.policy.routes import RouteTable, rewritten
from core.problems import ConfigError

TARGET = {"host": "127.0.0.1", "port": 1}


def table(*paths: str) -> RouteTable:
    return RouteTable("r", tuple(Route(path=p, targets=(TARGET,)) for p in paths))


def chosen(routes: RouteTable, path: str) -> str | None:
    route = routes.choose(path)
    return None if route is None else route.pattern.source


def test_the_most_specific_route_wins_whatever_the_order() -> None:
    routes = table("/*", "/api/*", "/api/v1/*.json", "/api/v1/*", "/api*", "/api/login")
    assert chosen(routes, "/api/login") == "/api/login"  # exact first
    assert chosen(routes, "/api/v1/a.json") == "/api/v1/*.json"  # prefix /api/v1/ is longest
    assert chosen(routes, "/api/v1/a.txt") == "/api/v1/*"
    assert chosen(routes, "/api/v1") == "/api/v1/*"  # a subtree includes its directory
    assert chosen(routes, "/api") == "/api/*"  # the subtree before the glob of equal prefix
    assert chosen(routes, "/apix") == "/api*"
    assert chosen(routes, "/other") == "/*"


def test_no_route_matches_outside_every_pattern() -> None:
    routes = table("/api/*", "/login")
    assert chosen(routes, "/apix") is None
    assert chosen(routes, "/login/") is None  # exact means exact
    assert chosen(routes, "/") is None


def test_between_equally_specific_globs_the_first_written_wins() -> None:
    routes = table("/a/*.json", "/a/?*")
    assert chosen(routes, "/a/x.json") == "/a/*.json"  # both have the prefix /a/


# The oracle, written from the documented order rather than from the implementation: exact, then
# the longest literal prefix (text before the first wildcard; a subtree's directory), then a
# subtree before a glob, then the first written.
def literal(pattern: str) -> tuple[str, str]:
    body = pattern[:-2] if pattern.endswith("/*") else pattern
    wild = [body.index(c) for c in "*?" if c in body]
    if pattern.endswith("/*") and not wild:
        return "subtree", body
    return ("exact", pattern) if not wild else ("glob", body[: min(wild)])


def matches(pattern: str, path: str) -> bool:
    kind, prefix = literal(pattern)
    if kind == "exact":
        return path == pattern
    if kind == "subtree":
        return path == prefix or path.startswith(prefix + "/")
    # A glob ending in /* also covers its subtree (core.paths.compile_pattern).
    body, tail = (pattern[:-2], "(?:/.*)?") if pattern.endswith("/*") else (pattern, "")
    regex = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in body)
    return re.fullmatch(regex + tail, path) is not None


def oracle(patterns: list[str], path: str) -> int | None:
    def rank(index: int) -> tuple[int, int, int, int]:
        kind, prefix = literal(patterns[index])
        return (kind == "exact", len(prefix), kind != "glob", -index)

    candidates = [i for i, p in enumerate(patterns) if matches(p, path)]
    return max(candidates, key=rank) if candidates else None


SEGMENT = st.sampled_from(["a", "b", "ab", "a*", "*b", "*", "?", "a?"])
PATTERNS = st.lists(SEGMENT, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s))
PATHS = st.lists(st.sampled_from(["a", "b", "ab", "ba", "abb", ""]), min_size=1, max_size=4)


@given(st.lists(PATTERNS, min_size=1, max_size=6), PATHS)
def test_the_route_chosen_is_the_most_specific_match(
    patterns: list[str], segments: list[str]
) -> None:
    path = "/" + "/".join(segments)
    route = table(*patterns).choose(path)
    assert (None if route is None else route.index) == oracle(patterns, path)


@pytest.mark.parametrize(
    ("path", "rewrite", "expected"),
    [
        ("/api/users", {"strip_prefix": "/api"}, "/users"),
        ("/api", {"strip_prefix": "/api"}, "/"),
        ("/api/", {"strip_prefix": "/api"}, "/"),
        ("/api;v=1/users", {"strip_prefix": "/api"}, "/users"),  # the segment's ;params go too
        ("/x/users", {"strip_prefix": "/x", "add_prefix": "/admin"}, "/admin/users"),
        ("/x", {"strip_prefix": "/x", "add_prefix": "/admin"}, "/admin"),
        ("/users", {"add_prefix": "/v2"}, "/v2/users"),
        ("/a/b/c", {"strip_prefix": "/a/b"}, "/c"),
    ],
)
def test_a_rewrite_strips_then_adds_whole_segments(
    path: str, rewrite: dict[str, str], expected: str
) -> None:
    assert rewritten(path, Rewrite.model_validate(rewrite)) == expected


def test_a_path_the_rewrite_does_not_cover_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="does not start with /api"):
        rewritten("/apix/users", Rewrite(strip_prefix="/api"))


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ({"path": "/ap*", "rewrite": {"strip_prefix": "/api"}}, "not a leading part"),
        ({"path": "/api/*", "rewrite": {"strip_prefix": "/ap"}}, "not a leading part"),
        ({"path": "/api/*", "rewrite": {"strip_prefix": "/api/"}}, "without a trailing"),
        ({"path": "/api/*", "rewrite": {"add_prefix": "/v*"}}, "no wildcards"),
        ({"path": "/api/*", "rewrite": {}}, "needs strip_prefix, add_prefix or both"),
        ({"path": "/api/*", "targets": []}, "an empty list"),
        ({"path": "api"}, "starts with /"),
    ],
)
def test_a_route_that_could_not_be_carried_out_is_refused(
    route: dict[str, object], error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        Route.model_validate({"targets": [TARGET], **route})


def test_a_strip_prefix_is_compared_in_canonical_form() -> None:
    route = Route.model_validate(
        {"path": "/a%62c/*", "targets": [TARGET], "rewrite": {"strip_prefix": "/abc"}}
    )
    assert route.rewrite == Rewrite(strip_prefix="/abc")


def test_routes_are_for_http_resources_and_may_stand_alone() -> None:
    routes = [{"path": "/api/*", "targets": [TARGET]}]
    alone = Resource.model_validate({"host": "a.test", "routes": routes})
    assert alone.targets == ()
    assert (
        alone.every_target()
        == Resource.model_validate({"host": "a.test", "targets": [TARGET]}).targets
    )
    with pytest.raises(ValidationError, match="a tcp resource has none"):
        Resource.model_validate(
            {"protocol": "tcp", "port": 9, "targets": [TARGET], "routes": routes}
        )
    with pytest.raises(ValidationError, match="needs targets"):
        Resource.model_validate({"host": "a.test"})


def policy(routes: str, targets: str = "targets: [{host: 127.0.0.1, port: 1}]") -> str:
    return f"""\
version: 1
resources:
  app:
    host: app.test
    auth: public
    {targets}
    rules: [{{action: deny, path: "/admin/*"}}]
    routes:
{routes}"""


def test_check_refuses_a_route_that_can_never_match() -> None:
    routes = """\
      - {path: "/api/*", targets: [{host: 127.0.0.1, port: 2}]}
      - {path: "/login", targets: [{host: 127.0.0.1, port: 2}]}
      - {path: "/api/**", targets: [{host: 127.0.0.1, port: 3}]}
      - {path: "/log%69n", targets: [{host: 127.0.0.1, port: 3}]}
"""
    with pytest.raises(ConfigError) as error:
        parse_policy(policy(routes), Capabilities())
    text = str(error.value)
    assert (
        "resources.app.routes[2].path: /api/** can never match: every path it matches goes to "
        "routes[0] (/api/*) first (the most specific route wins)" in text
    )
    assert "resources.app.routes[3].path: /log%69n can never match: every path it matches goes "
    assert "to routes[1] (/login) first" in text


def test_check_refuses_a_glob_inside_an_earlier_one_and_keeps_one_that_overlaps() -> None:
    inside = """\
      - {path: "/f/*/raw", targets: [{host: 127.0.0.1, port: 2}]}
      - {path: "/f/*a/raw", targets: [{host: 127.0.0.1, port: 3}]}
"""
    with pytest.raises(ConfigError) as error:
        parse_policy(policy(inside), Capabilities())
    assert (
        "resources.app.routes[1].path: /f/*a/raw can never match: every path it matches goes to "
        "routes[0] (/f/*/raw) first" in str(error.value)
    )
    # The other way round each has paths of its own (/f/b/raw goes to the second).
    first, second = inside.splitlines()
    compiled = parse_policy(policy(f"{second}\n{first}\n"), Capabilities())
    table = compiled.resources["app"].routes
    assert [getattr(table.choose(path), "index", None) for path in ("/f/ba/raw", "/f/b/raw")] == [
        0,
        1,
    ]


def test_check_names_an_unknown_site_of_a_route() -> None:
    routes = '      - {path: "/api/*", targets: [{site: nowhere, host: 127.0.0.1, port: 2}]}\n'
    with pytest.raises(ConfigError, match=r"routes\[0\].targets\[0\].site: no site named"):
        parse_policy(policy(routes), Capabilities())


REWRITING = policy(
    '      - {path: "/x/*", targets: [{host: 127.0.0.1, port: 2}], '
    "rewrite: {strip_prefix: /x, add_prefix: /admin}}\n"
)


def test_explain_names_the_route_and_the_path_its_target_gets() -> None:
    compiled = parse_policy(REWRITING, Capabilities())
    result = explain(compiled, "app.test", "/x/panel?q=1", "127.0.0.1", "GET")
    assert (result.status, result.route) == ("forward", "resources.app.routes[0] (/x/*)")
    assert result.target_path == "/admin/panel"
    plain = explain(compiled, "app.test", "/other", "127.0.0.1", "GET")
    assert (plain.route, plain.target_path) == (None, None)
    denied = explain(compiled, "app.test", "/admin/panel", "127.0.0.1", "GET")
    assert (denied.status, denied.route) == ("deny", None)  # the rules decide before any route


def test_explain_answers_404_for_a_path_no_route_serves_without_targets() -> None:
    compiled = parse_policy(
        policy('      - {path: "/api/*", targets: [{host: 127.0.0.1, port: 2}]}\n', targets=""),
        Capabilities(),
    )
    result = explain(compiled, "app.test", "/other", "127.0.0.1", "GET")
    assert (result.status, result.http_status) == ("not-found", 404)
    assert result.summary.startswith("no route of app serves /other")


def test_the_command_line_prints_the_route_and_the_rewritten_path(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from core.cli import app

    written = tmp_path / "policy.yaml"
    written.write_text(REWRITING)
    args = [
        "explain",
        str(written),
        "--host",
        "app.test",
        "--path",
        "/x/panel",
        "--ip",
        "127.0.0.1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "route     resources.app.routes[0] (/x/*)\n" in result.output
    assert "target    gets /admin/panel (the route's rewrite)\n" in result.output
