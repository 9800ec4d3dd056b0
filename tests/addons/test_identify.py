"""Sign-in on the gateway, in-process: sessions, callbacks, sign-out, and what the application sees."""

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from mitmproxy import http

from addons.exchange import exchange_of
from core.auth import sessions
from tests.addons import support
from tests.addons.signin_support import PORTAL, node
from tests.addons.support import respond, run

BROWSER = ("Accept", "text/html,application/xhtml+xml")


def flow(host: str, path: str = "/", **kwargs: object) -> http.HTTPFlow:
    """A request over plain http (mitmproxy's test flows default to TLS)."""
    made = support.flow(host, path, **kwargs)  # type: ignore[arg-type]
    made.client_conn.timestamp_tls_setup = None
    return made


def tls_flow(host: str, path: str = "/", **kwargs: object) -> http.HTTPFlow:
    made = support.flow(host, path, **kwargs)  # type: ignore[arg-type]
    made.client_conn.timestamp_tls_setup = time.time()
    return made


def status(made: http.HTTPFlow) -> int | None:
    return made.response.status_code if made.response is not None else None


def answer(made: http.HTTPFlow) -> http.Response:
    assert made.response is not None
    return made.response


def cookie(value: str, name: str = "warren_session") -> tuple[str, str]:
    return ("Cookie", f"theme=dark; {name}={value}; lang=en")


def test_a_browser_without_a_session_is_sent_to_the_portal(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        made = run(n.context, flow("App.Example:8443", "/x/../reports?q=1", headers=[BROWSER]))
        assert made.response is not None
        assert made.response.status_code == 302
        location = made.response.headers["location"]
        assert location.startswith(f"{PORTAL}/sign-in?rd=")
        assert parse_qs(urlsplit(location).query)["rd"] == ["http://app.example:8443/reports?q=1"]


def test_an_api_client_gets_401_not_a_redirect(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        made = run(n.context, flow("app.example", "/api", headers=[("Accept", "application/json")]))
        assert made.response is not None
        assert made.response.status_code == 401
        assert made.response.headers["www-authenticate"] == 'Warren realm="app"'
        assert json.loads(made.response.content or b"")["status"] == 401
        post = run(n.context, flow("app.example", "/form", method="POST", headers=[BROWSER]))
        assert status(post) == 401


def test_a_session_reaches_the_application_as_identity_headers(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example", groups=("staff", "ops"))
        made = run(n.context, flow("app.example", "/", headers=[cookie(token), BROWSER]))
        assert made.response is None
        headers = made.request.headers
        assert headers["remote-user"] == "alice"
        assert headers["remote-email"] == "alice@example.com"
        assert headers["remote-groups"] == "staff,ops"
        assert headers["cookie"] == "theme=dark; lang=en"  # Warren's cookie never reaches it
        assertion = headers["x-warren-assertion"]
        public = jwt.PyJWKSet.from_dict(n.keys.jwks())[jwt.get_unverified_header(assertion)["kid"]]
        claims = jwt.decode(
            assertion, public, algorithms=["EdDSA"], audience="app.example", issuer=PORTAL
        )
        assert claims["sub"] == "alice"
        assert claims["groups"] == ["staff", "ops"]
        assert claims["exp"] - claims["iat"] <= 60
        exchange = exchange_of(made)
        assert exchange is not None
        assert exchange.user == "alice"


def test_forged_identity_headers_are_replaced(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        forged = [("Remote-User", "admin"), ("X-Warren-Assertion", "x"), ("Remote-Groups", "root")]
        token = n.session("app.example")
        made = run(n.context, flow("app.example", "/", headers=[cookie(token), *forged]))
        assert made.request.headers.get_all("remote-user") == ["alice"]
        assert made.request.headers.get_all("remote-groups") == ["staff"]
        assert len(made.request.headers.get_all("x-warren-assertion")) == 1


def test_a_session_for_one_host_is_refused_on_another(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example")
        made = run(n.context, flow("other.example", "/", headers=[cookie(token), BROWSER]))
        assert status(made) == 302
        assert "remote-user" not in made.request.headers


def test_an_assertion_is_not_a_session(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        first = run(n.context, flow("app.example", "/", headers=[cookie(n.session("app.example"))]))
        assertion = first.request.headers["x-warren-assertion"]
        made = run(n.context, flow("app.example", "/", headers=[cookie(assertion), BROWSER]))
        assert status(made) == 302


def test_expired_and_tampered_sessions_are_refused(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        expired = n.session("app.example", now=time.time() - 7200)
        header, payload, signature = n.session("app.example").split(".")
        tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
        for token in (expired, tampered, "not-a-token"):
            made = run(n.context, flow("app.example", "/", headers=[cookie(token), BROWSER]))
            assert status(made) == 302, token


def test_a_revoked_session_is_refused_on_the_next_request(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example", sid="s-revoke")
        assert run(n.context, flow("app.example", "/", headers=[cookie(token)])).response is None
        n.revoke("s-revoke")
        made = run(n.context, flow("app.example", "/", headers=[cookie(token)]))
        assert status(made) == 401


def test_users_and_groups_decide_who_gets_in(tmp_path: Path) -> None:
    with node(tmp_path) as n:
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
    with node(tmp_path) as n:
        assert run(n.context, flow("public.example", "/")).response is None


def test_the_callback_trades_a_code_for_a_host_cookie_once(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example")
        grant = sessions.CodeGrant("app.example", token, "session", "/reports?q=1", False)
        code = n.code(grant)
        made = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert status(made) == 302
        assert answer(made).headers["location"] == "/reports?q=1"
        set_cookie = answer(made).headers["set-cookie"]
        assert set_cookie.startswith(f"warren_session={token}; Path=/; Max-Age=")
        assert "; HttpOnly; SameSite=Lax" in set_cookie
        assert "Secure" not in set_cookie
        assert "Domain" not in set_cookie
        again = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert status(again) == 400
        assert "set-cookie" not in answer(again).headers


def test_over_https_the_cookie_is_secure_and_host_bound(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example")
        code = n.code(sessions.CodeGrant("app.example", token, "session", "/", True))
        made = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert made.response is not None
        set_cookie = made.response.headers["set-cookie"]
        assert set_cookie.startswith("__Host-warren_session=")
        assert "Secure" in set_cookie
        # Over https only the prefixed name counts: a plain one could come from a sibling host.
        plain = run(n.context, tls_flow("app.example", "/", headers=[cookie(token), BROWSER]))
        assert status(plain) == 302
        bound = cookie(token, "__Host-warren_session")
        assert run(n.context, tls_flow("app.example", "/", headers=[bound])).response is None


def test_a_code_for_another_host_or_a_bad_code_is_refused(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        token = n.session("app.example")
        code = n.code(sessions.CodeGrant("app.example", token, "session", "/", False))
        elsewhere = run(n.context, flow("other.example", f"/.warren/callback?code={code}"))
        assert status(elsewhere) == 400
        # The same code was spent by that attempt: it cannot be tried again on its own host.
        spent = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert status(spent) == 400
        for junk in ("", "x", "a" * 500):
            made = run(n.context, flow("app.example", f"/.warren/callback?code={junk}"))
            assert status(made) == 400
        # A token for another host inside a code for this one (a forged grant) is refused too.
        forged = n.code(sessions.CodeGrant("other.example", token, "session", "/", False))
        made = run(n.context, flow("other.example", f"/.warren/callback?code={forged}"))
        assert status(made) == 400


def test_an_expired_code_is_refused(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    with node(tmp_path) as n:
        token = n.session("app.example")
        code = n.code(sessions.CodeGrant("app.example", token, "session", "/", False))
        later = time.time() + sessions.CODE_SECONDS + 1
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time", lambda: later)
            made = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert status(made) == 400


def test_sign_out_revokes_the_session_everywhere(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        sid = "s-everywhere"
        on_app = n.session("app.example", sid=sid)
        on_other = n.session("other.example", sid=sid)
        assert (
            run(n.context, flow("other.example", "/", headers=[cookie(on_other)])).response is None
        )
        ask = run(n.context, flow("app.example", "/.warren/logout", headers=[BROWSER]))
        assert status(ask) == 200
        assert b'method="post"' in (answer(ask).content or b"")
        made = run(
            n.context,
            flow("app.example", "/.warren/logout", method="POST", headers=[cookie(on_app)]),
        )
        assert status(made) == 303
        assert answer(made).headers["location"].startswith(f"{PORTAL}/signed-out?rd=")
        assert "warren_session=; Path=/; Max-Age=0" in answer(made).headers.get_all("set-cookie")[0]
        for host, token in (("app.example", on_app), ("other.example", on_other)):
            again = run(n.context, flow(host, "/", headers=[cookie(token)]))
            assert status(again) == 401


def test_reserved_paths_never_reach_the_application(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        for path in ("/.warren/", "/.warren/other", "/.warren/callback/x"):
            made = run(n.context, flow("public.example", path))
            assert status(made) == 404, path
        # The portal's host is the portal's: its /.warren/ paths go to it.
        assert run(n.context, flow("auth.example", "/.warren/logout")).response is None


def test_an_application_cannot_set_warren_cookies(tmp_path: Path) -> None:
    from mitmproxy.test import tutils

    with node(tmp_path) as n:
        made = run(n.context, flow("public.example", "/"))
        made.response = tutils.tresp()
        made.response.headers.set_all(
            "set-cookie",
            ["warren_session=planted; Path=/", "__Host-warren_share=x", "app=1; Path=/"],
        )
        from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook

        from tests.addons.support import trigger

        trigger(n.context, made, HttpResponseHeadersHook)
        respond(n.context, made)
        assert made.response.headers.get_all("set-cookie") == ["app=1; Path=/"]


def test_the_portal_keeps_its_own_cookies(tmp_path: Path) -> None:
    with node(tmp_path) as n:
        jar = ("Cookie", "warren_portal=p; warren_csrf=c; warren_session=s; other=1")
        made = run(n.context, flow("auth.example", "/sign-in", headers=[jar]))
        assert made.request.headers["cookie"] == "warren_portal=p; warren_csrf=c; other=1"


def test_a_shared_cookie_domain_covers_every_host_below_it(tmp_path: Path) -> None:
    with node(tmp_path, settings="session: {cookie_domain: .example}\n") as n:
        token = n.session(".example")
        code = n.code(sessions.CodeGrant("app.example", token, "session", "/", True))
        made = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        set_cookie = answer(made).headers["set-cookie"]
        assert set_cookie.startswith("__Secure-warren_session=")
        assert "; Domain=.example" in set_cookie
        assert "; Secure" in set_cookie
        shared = cookie(token, "__Secure-warren_session")
        for host in ("app.example", "other.example"):
            assert run(n.context, tls_flow(host, "/", headers=[shared])).response is None
        # A session for one host stays that host's, even with a shared domain configured.
        only_app = cookie(n.session("app.example"), "__Secure-warren_session")
        assert status(run(n.context, tls_flow("other.example", "/", headers=[only_app]))) == 401
