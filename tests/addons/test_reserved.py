"""Warren's own paths on every resource host (addons.reserved): /.warren/callback trades the
portal's one-time code for this host's cookie, /.warren/logout asks and then signs out everywhere,
only from its own page; anything else under /.warren/ is 404. In-process, with sign-in configured
(tests.support.signin_pack; the request helpers are test_identify's)."""

import html
import re
import time
from pathlib import Path

from core.auth import sessions
from tests.addons.test_identify import BROWSER, answer, cookie, flow, status, tls_flow
from tests.support.inprocess import run
from tests.support.signin_pack import PORTAL, SigninPack, signin_pack


def logout_form(n: SigninPack, host: str, token: str) -> tuple[str, str]:
    """The sign-out page's form action and the CSRF cookie it set, as a browser gets them."""
    page = run(n.context, flow(host, "/.warren/logout", headers=[cookie(token), BROWSER]))
    assert status(page) == 200
    body = (answer(page).content or b"").decode()
    assert 'method="post"' in body
    action = re.search(r'action="([^"]+)"', body)
    assert action is not None
    set_cookie = answer(page).headers["set-cookie"]
    assert set_cookie.startswith("warren_csrf=")
    assert "SameSite=Strict" in set_cookie
    assert "HttpOnly" in set_cookie
    return html.unescape(action.group(1)), set_cookie.split(";")[0].partition("=")[2]


def test_the_callback_trades_a_code_for_a_host_cookie_once(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
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
    with signin_pack(tmp_path) as n:
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
    with signin_pack(tmp_path) as n:
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

    with signin_pack(tmp_path) as n:
        token = n.session("app.example")
        code = n.code(sessions.CodeGrant("app.example", token, "session", "/", False))
        later = time.time() + sessions.CODE_SECONDS + 1
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time", lambda: later)
            made = run(n.context, flow("app.example", f"/.warren/callback?code={code}"))
        assert status(made) == 400


def test_sign_out_revokes_the_session_everywhere(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        sid = "s-everywhere"
        on_app = n.session("app.example", sid=sid)
        on_other = n.session("other.example", sid=sid)
        assert (
            run(n.context, flow("other.example", "/", headers=[cookie(on_other)])).response is None
        )
        action, csrf = logout_form(n, "app.example", on_app)
        made = run(
            n.context,
            flow("app.example", action, method="POST", headers=[cookie(on_app, csrf=csrf)]),
        )
        assert status(made) == 303
        assert answer(made).headers["location"].startswith(f"{PORTAL}/signed-out?rd=")
        assert "warren_session=; Path=/; Max-Age=0" in answer(made).headers.get_all("set-cookie")[0]
        for host, token in (("app.example", on_app), ("other.example", on_other)):
            again = run(n.context, flow(host, "/", headers=[cookie(token)]))
            assert status(again) == 401


def test_a_sign_out_without_the_pages_token_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """A sibling subdomain's page can make a browser POST here with the session cookie
    (SameSite=Lax lets same-site requests carry it); it cannot know the page's token."""
    with signin_pack(tmp_path) as n:
        token = n.session("app.example", sid="s-forged")
        action, csrf = logout_form(n, "app.example", token)
        assert action.startswith("/.warren/logout?csrf=")
        logout = "/.warren/logout"
        forged = [
            (logout, [cookie(token)]),  # no token at all
            (logout, [cookie(token, csrf=csrf)]),  # the cookie, but not the form's token
            (f"{logout}?csrf=guessed-{'x' * 30}", [cookie(token, csrf=csrf)]),
            (action, [cookie(token)]),  # the token without its cookie
            (action, [cookie(token, csrf=csrf), ("Origin", "http://evil.app.example")]),
            (action, [cookie(token, csrf=csrf), ("Sec-Fetch-Site", "same-site")]),
        ]
        for path, headers in forged:
            made = run(n.context, flow("app.example", path, method="POST", headers=headers))
            assert status(made) == 403, (path, headers)
            assert "set-cookie" not in answer(made).headers
            still = run(n.context, flow("app.example", "/", headers=[cookie(token)]))
            assert still.response is None, (path, headers)  # the session still works
        own = [cookie(token, csrf=csrf), ("Origin", "http://app.example")]
        made = run(n.context, flow("app.example", action, method="POST", headers=own))
        assert status(made) == 303
        assert status(run(n.context, flow("app.example", "/", headers=[cookie(token)]))) == 401


def test_reserved_paths_never_reach_the_application(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        for path in ("/.warren/", "/.warren/other", "/.warren/callback/x"):
            made = run(n.context, flow("public.example", path))
            assert status(made) == 404, path
        # The portal's host is the portal's: its /.warren/ paths go to it.
        assert run(n.context, flow("auth.example", "/.warren/logout")).response is None


def test_the_sign_out_page_keeps_a_token_that_is_still_usable(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        token = n.session("app.example")
        action, csrf = logout_form(n, "app.example", token)
        again = run(
            n.context,
            flow("app.example", "/.warren/logout", headers=[cookie(token, csrf=csrf), BROWSER]),
        )
        assert status(again) == 200
        assert "set-cookie" not in answer(again).headers  # no new token
        assert html.escape(action) in (answer(again).content or b"").decode()


def test_without_a_portal_signing_out_ends_on_warrens_own_page(tmp_path: Path) -> None:
    from tests.support.inprocess import pack

    with pack(tmp_path) as (context, _):  # no public_url
        page = run(context, flow("app.example", "/.warren/logout", headers=[BROWSER]))
        found = re.search(r'action="([^"]+)"', (answer(page).content or b"").decode())
        assert found is not None
        csrf = answer(page).headers["set-cookie"].split(";")[0].partition("=")[2]
        made = run(
            context,
            flow(
                "app.example",
                html.unescape(found.group(1)),
                method="POST",
                headers=[("Cookie", f"warren_csrf={csrf}"), ("Origin", "http://app.example")],
            ),
        )
        assert status(made) == 200
        cleared = answer(made).headers.get_all("set-cookie")
        assert all("Max-Age=0" in one for one in cleared)
        assert {one.partition("=")[0] for one in cleared} == {
            "warren_session",
            "warren_password",
            "warren_share",
            "warren_csrf",
        }
        assert answer(made).headers["content-type"] == "text/html; charset=utf-8"


def test_the_portals_own_host_keeps_its_warren_paths(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        for path in ("/.warren/logout", "/.warren/callback?code=x", "/.warren/anything"):
            made = run(n.context, flow("auth.example", path, headers=[BROWSER]))
            assert made.response is None, path
            assert made.request.host == "192.0.2.1"  # the portal answers them
