"""The gateway's sign-in state (addons.signin): the session cookie's name and Domain for a host,
where a browser is sent to sign in, the identity headers made once and reused; in-process, with
sign-in configured (tests.support.signin_pack; the request helpers are test_identify's)."""

import time
from ipaddress import ip_address
from pathlib import Path

import jwt
import pytest

from addons.signin import ASSERTION_SECONDS, browser, is_https, original_url, request_origin
from core.auth import sessions
from core.auth.identity import Identity
from core.clientip import ClientAddress
from core.forwarding import ASSERTION_HEADER
from tests.addons.test_identify import answer, cookie, flow, status, tls_flow
from tests.support.inprocess import run
from tests.support.signin_pack import PORTAL, signin_pack


def test_a_shared_cookie_domain_covers_every_host_below_it(tmp_path: Path) -> None:
    with signin_pack(tmp_path, settings="session: {cookie_domain: .example}\n") as n:
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


def test_the_session_cookie_is_shared_only_by_hosts_under_the_cookie_domain(
    tmp_path: Path,
) -> None:
    with signin_pack(tmp_path / "shared", settings="session: {cookie_domain: .example}\n") as n:
        signin = n.runtime.signin
        assert [
            signin.session_domain(host) for host in ("app.example", "example", "app.other")
        ] == [
            ".example",
            ".example",
            None,
        ]
        assert signin.session_cookie("app.example", True) == "__Secure-warren_session"
        assert signin.session_cookie("app.other", True) == "__Host-warren_session"
        assert signin.session_cookie("app.example", False) == "warren_session"
    with signin_pack(tmp_path / "own") as n:
        assert n.runtime.signin.session_domain("app.example") is None
        assert n.runtime.signin.session_cookie("app.example", True) == "__Host-warren_session"


def test_a_browser_is_sent_to_the_portal_with_where_it_was_going(tmp_path: Path) -> None:
    from tests.support.inprocess import pack

    with signin_pack(tmp_path / "portal") as n:
        assert n.runtime.signin.sign_in_url("https://app.example/a?b=1&c") == (
            f"{PORTAL}/sign-in?rd=https%3A%2F%2Fapp.example%2Fa%3Fb%3D1%26c"
        )
    (tmp_path / "none").mkdir()
    with pack(tmp_path / "none") as (_, runtime):
        assert runtime.signin.sign_in_url("https://app.example/") is None


def test_identity_headers_are_reused_while_the_assertion_has_time_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with signin_pack(tmp_path) as n:
        signin = n.runtime.signin
        alice = Identity(
            "alice", "session", time.time() + 3600, "alice@example.com", ("staff",), "s-1"
        )
        first = signin.identity_headers(alice, "app.example")
        assert [name for name, _ in first] == [
            b"Remote-User",
            b"Remote-Email",
            b"Remote-Groups",
            ASSERTION_HEADER,
        ]
        assert signin.identity_headers(alice, "app.example") is first
        assert signin.identity_headers(alice, "other.example") != first  # another audience
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + ASSERTION_SECONDS - 31)
        assert signin.identity_headers(alice, "app.example") is first
        monkeypatch.setattr(time, "time", lambda: now + ASSERTION_SECONDS - 29)
        again = signin.identity_headers(alice, "app.example")
        assert again[:3] == first[:3]
        assert again[3] != first[3]  # less than 30 s left: a new assertion


def test_a_share_link_is_asserted_without_a_persons_headers(tmp_path: Path) -> None:
    with signin_pack(tmp_path) as n:
        share = Identity("share:l-1", "share", time.time() + 600, session_id="l-1")
        fields = n.runtime.signin.identity_headers(share, "app.example")
        assert [name for name, _ in fields] == [ASSERTION_HEADER]
        claims = jwt.decode(fields[0][1], options={"verify_signature": False})
        assert (claims["sub"], claims["auth_method"]) == ("share:l-1", "share")
        assert "groups" not in claims


def test_who_is_a_browser_and_which_scheme_it_speaks() -> None:
    html = ("Accept", "text/html")
    assert browser(flow("app.example", headers=[html]))
    assert browser(flow("app.example", method="HEAD", headers=[("Accept", "application/xhtml")]))
    assert not browser(flow("app.example", method="POST", headers=[html]))
    assert not browser(flow("app.example", headers=[("Accept", "*/*")]))
    peer = ip_address("198.51.100.7")
    direct, proxied = (
        ClientAddress(peer, peer, "peer"),
        ClientAddress(peer, peer, "x-forwarded-for"),
    )
    claimed = flow("App.Example:8443", "/x?y=1", headers=[("X-Forwarded-Proto", "https")])
    assert request_origin(claimed, direct) == "http://app.example:8443"  # nobody vouches for it
    assert request_origin(claimed, proxied) == "https://app.example:8443"
    assert original_url(claimed, proxied) == "https://app.example:8443/x?y=1"
    assert is_https(tls_flow("app.example"), direct)
