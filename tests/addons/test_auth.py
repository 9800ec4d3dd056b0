"""Sign-in enforced (addons.auth): whoever addons.identify proved, checked against the resource.
A browser without a session is sent to the portal, an API client gets 401 with a challenge, a
person the resource does not list gets 403. In-process, with sign-in configured
(tests.support.signin_pack; the request helpers are test_identify's)."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.addons.test_identify import BROWSER, cookie, flow, status
from tests.support.inprocess import run
from tests.support.signin_pack import PORTAL, signin_pack


def test_a_browser_without_a_session_is_sent_to_the_portal(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        made = run(n.context, flow("App.Example:8443", "/x/../reports?q=1", headers=[BROWSER]))
        assert made.response is not None
        assert made.response.status_code == 302
        location = made.response.headers["location"]
        assert location.startswith(f"{PORTAL}/sign-in?rd=")
        assert parse_qs(urlsplit(location).query)["rd"] == ["http://app.example:8443/reports?q=1"]


def test_an_api_client_gets_401_not_a_redirect(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        made = run(n.context, flow("app.example", "/api", headers=[("Accept", "application/json")]))
        assert made.response is not None
        assert made.response.status_code == 401
        assert made.response.headers["www-authenticate"] == 'Warren realm="app"'
        assert json.loads(made.response.content or b"")["status"] == 401
        post = run(n.context, flow("app.example", "/form", method="POST", headers=[BROWSER]))
        assert status(post) == 401


def test_users_and_groups_decide_who_gets_in(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        for user, groups, expected in [
            ("bob", (), None),
            ("carol", ("ops",), None),
            ("alice", ("staff",), 403),
        ]:
            token = n.session("ops.example", user, groups=groups)
            made = run(n.context, flow("ops.example", "/", headers=[cookie(token), BROWSER]))
            status = made.response.status_code if made.response else None
            assert status == expected, user
        denied = run(
            n.context,
            flow("ops.example", "/", headers=[cookie(n.session("ops.example")), BROWSER]),
        )
        assert denied.response is not None
        assert b"signed in as alice" in (denied.response.content or b"")


def test_a_public_resource_needs_nothing(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        assert run(n.context, flow("public.example", "/")).response is None


def test_a_basic_auth_resource_challenges_api_clients_for_basic(tmp_path: Path) -> None:
    from tests.support.signin_pack import POLICY

    policy = POLICY + (
        "  api:\n    host: api.example\n    auth: {basic_auth: true}\n"
        "    targets: [{host: 192.0.2.14, port: 8080}]\n"
    )
    with signin_pack(tmp_path, policy=policy) as n:
        made = run(n.context, flow("api.example", "/v1", headers=[("Accept", "application/json")]))
        assert status(made) == 401
        assert made.response is not None
        assert made.response.headers["www-authenticate"] == 'Basic realm="api", charset="UTF-8"'
        detail = json.loads(made.response.content or b"")["detail"]
        assert detail == f"Sign in first at {PORTAL}."


def test_without_a_portal_a_browser_is_told_to_sign_in_instead(tmp_path: Path) -> None:
    from tests.support.inprocess import pack

    with pack(tmp_path) as (context, _):  # no public_url: nowhere to send anyone
        made = run(context, flow("private.example", "/", headers=[BROWSER]))
        assert status(made) == 401
        assert made.response is not None
        assert made.response.headers["www-authenticate"] == 'Warren realm="private"'
        assert b"Sign in first." in (made.response.content or b"")


def test_a_signed_in_person_not_listed_is_refused_whatever_the_rules_allowed_before(
    tmp_path: Path,
) -> None:
    from tests.support.signin_pack import POLICY

    policy = POLICY.replace(
        "    auth: {users: [bob], groups: [ops]}\n",
        "    auth: {users: [bob], groups: [ops]}\n    rules: [{action: allow, path: /open/*}]\n",
    )
    with signin_pack(tmp_path, policy=policy) as n:
        alice = cookie(n.session("ops.example"))
        # An allow rule needs no sign-in: alice is let in there, listed or not ...
        assert run(n.context, flow("ops.example", "/open/x", headers=[alice])).response is None
        # ... and refused everywhere else on the resource.
        assert status(run(n.context, flow("ops.example", "/x", headers=[alice]))) == 403
