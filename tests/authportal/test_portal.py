"""The portal and the gateway as separate processes, driven over HTTP like a browser would."""

import html
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote

import httpx
import jwt
import pyotp
import pytest

from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.loopback_node import PASSWORD, LoopbackNode, LoopbackNodeFactory
from tests.support.waiting import eventually


def sign_in(
    browser: Browser,
    node: LoopbackNode,
    page: httpx.Response,
    url: str,
    user: str,
    password: str = PASSWORD,
) -> tuple[httpx.Response, str]:
    return browser.go(
        f"{node.portal}/sign-in",
        "POST",
        data={
            "csrf": form_value(page.text, "csrf"),
            "rd": form_value(page.text, "rd"),
            "username": user,
            "password": password,
        },
        origin=node.portal,
    )


def sign_out(browser: Browser, node: LoopbackNode, host: str) -> tuple[httpx.Response, str]:
    """Through the gateway's sign-out page: its form, with the token the page carries."""
    ask, _ = browser.go(node.url(host, "/.warren/logout"))
    assert 'method="post"' in ask.text
    action = re.search(r'<form method="post" action="([^"]+)"', ask.text)
    assert action is not None
    form = node.url(host, html.unescape(action.group(1)))
    return browser.go(form, "POST", origin=f"http://{host}:{node.port}")


def signed_in_on(browser: Browser, node: LoopbackNode, host: str) -> bool:
    answer = browser.request("GET", node.url(host, "/"))
    return answer.status_code == 200


def until(deadline_seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` comes true before the deadline (polled: how soon is not the question)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def headers_seen(backend: Backend, tag: str) -> dict[str, str]:
    (seen,) = backend.received(tag)
    return {name.lower(): value for name, value in seen["headers"]}


def test_sign_in_lands_on_the_page_asked_for_with_identity_headers(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("alice", groups=("ops",))
    browser = node.browser()
    tag = uuid.uuid4().hex
    page, at = browser.go(node.url("app.localhost", f"/{tag}?x=1"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")
    assert "Sign in" in page.text
    assert "app.localhost" in page.text
    assert backend.received(tag) == []
    landed, at = sign_in(browser, node, page, at, "alice")
    assert landed.status_code == 200, browser.visited
    assert at == node.url("app.localhost", f"/{tag}?x=1")
    seen = headers_seen(backend, tag)
    assert seen["remote-user"] == "alice"
    assert seen["remote-email"] == "alice@example.com"
    assert seen["remote-groups"] == "ops"
    assert "cookie" not in seen  # Warren's cookies never reach the application
    # The assertion verifies against the portal's published keys, for this host only.
    jwks = browser.request("GET", f"{node.portal}/.well-known/jwks.json").json()
    assertion = seen["x-warren-assertion"]
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(assertion)["kid"]]
    claims = jwt.decode(
        assertion, key, algorithms=["EdDSA"], audience="app.localhost", issuer=node.portal
    )
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] <= 60
    # The cookie is this host's alone.
    assert set(browser.cookies("app.localhost")) == {"warren_session"}
    assert "warren_portal" in browser.cookies("auth.localhost")


def test_one_sign_in_covers_every_resource(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    tag = uuid.uuid4().hex
    landed, at = browser.go(node.url("wiki.localhost", f"/{tag}"))
    assert landed.status_code == 200
    assert at == node.url("wiki.localhost", f"/{tag}")
    assert not any("POST" in step for step in browser.visited[-4:])  # no form the second time
    assert headers_seen(backend, tag)["remote-user"] == "alice"


def test_a_signed_in_user_outside_the_resources_groups_gets_403(
    start_node: LoopbackNodeFactory,
) -> None:
    node = start_node()
    node.add_user("alice", groups=("staff",))
    browser = node.browser()
    page, at = browser.go(node.url("ops.localhost", "/"))
    denied, _ = sign_in(browser, node, page, at, "alice")
    assert denied.status_code == 403
    assert "signed in as alice" in denied.text


def test_two_step_verification(start_node: LoopbackNodeFactory, backend: Backend) -> None:
    node = start_node()
    secret = pyotp.random_base32(32)
    node.add_user("carol", totp=secret)
    browser = node.browser()
    tag = uuid.uuid4().hex
    page, at = browser.go(node.url("app.localhost", f"/{tag}"))
    step, at = sign_in(browser, node, page, at, "carol")
    assert at == f"{node.portal}/sign-in/code"
    assert "Two-step verification" in step.text
    assert "warren_portal" not in browser.cookies("auth.localhost")  # not signed in yet
    csrf = form_value(step.text, "csrf")
    wrong, _ = browser.go(
        f"{node.portal}/sign-in/code", "POST", data={"csrf": csrf, "code": "000000"}
    )
    assert wrong.status_code == 401
    code = pyotp.TOTP(secret).now()
    landed, at = browser.go(
        f"{node.portal}/sign-in/code", "POST", data={"csrf": csrf, "code": code}
    )
    assert landed.status_code == 200, browser.visited
    assert at == node.url("app.localhost", f"/{tag}")
    assert headers_seen(backend, tag)["remote-user"] == "carol"
    # The same code cannot be used again, even by someone who saw it.
    other = node.browser()
    page, at = other.go(node.url("app.localhost", "/"))
    step, _ = sign_in(other, node, page, at, "carol")
    replay, _ = other.go(
        f"{node.portal}/sign-in/code",
        "POST",
        data={"csrf": form_value(step.text, "csrf"), "code": code},
    )
    assert replay.status_code == 401


def test_unknown_user_and_wrong_password_get_the_same_answer(
    start_node: LoopbackNodeFactory,
) -> None:
    node = start_node()
    node.add_user("alice")
    answers = []
    for user, password in (("alice", "wrong password"), ("nobody", "wrong password")):
        browser = node.browser()
        page, at = browser.go(node.url("app.localhost", "/"))
        answer, _ = sign_in(browser, node, page, at, user, password)
        answers.append((answer.status_code, answer.text.replace(user, "NAME")))
    (status_a, text_a), (status_b, text_b) = answers
    assert status_a == status_b == 401
    assert without_csrf(text_a) == without_csrf(text_b)


def without_csrf(page: str) -> str:
    return "".join(line for line in page.splitlines() if "csrf" not in line)


def test_failed_sign_ins_lock_the_name_out(start_node: LoopbackNodeFactory) -> None:
    node = start_node(settings="regulation: {per_user: [3/minute, 5/hour], per_ip: [50/minute]}\n")
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    for _ in range(3):
        answer, _ = sign_in(browser, node, page, at, "alice", "wrong")
        assert answer.status_code == 401
    locked, _ = sign_in(browser, node, page, at, "alice")  # even the right password now
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.text
    assert "warren_portal" not in browser.cookies("auth.localhost")


def test_forms_need_their_csrf_token(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, _at = browser.go(node.url("app.localhost", "/"))
    data = {
        "csrf": "forged" * 6,
        "rd": form_value(page.text, "rd"),
        "username": "alice",
        "password": PASSWORD,
    }
    forged, _ = browser.go(f"{node.portal}/sign-in", "POST", data=data)
    assert forged.status_code == 403
    data["csrf"] = form_value(page.text, "csrf")
    elsewhere, _ = browser.go(
        f"{node.portal}/sign-in", "POST", data=data, origin="http://evil.example"
    )
    assert elsewhere.status_code == 403
    assert "warren_portal" not in browser.cookies("auth.localhost")


def test_sign_out_on_a_resource_ends_the_session_everywhere(
    start_node: LoopbackNodeFactory,
) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    assert browser.go(node.url("wiki.localhost", "/"))[0].status_code == 200
    done, at = sign_out(browser, node, "app.localhost")
    assert at.startswith(f"{node.portal}/signed-out")
    assert "You are signed out" in done.text
    assert browser.cookies("app.localhost") == {}
    # The wiki still holds its cookie, but the session behind it has ended.
    assert "warren_session" in browser.cookies("wiki.localhost")
    _page, at = browser.go(node.url("wiki.localhost", "/"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")


def test_sign_out_at_the_portal(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    home, _ = browser.go(f"{node.portal}/")
    assert "You are signed in" in home.text
    assert "app.localhost" in home.text
    browser.go(
        f"{node.portal}/sign-out",
        "POST",
        data={"csrf": form_value(home.text, "csrf")},
        origin=node.portal,
    )
    _page, at = browser.go(node.url("app.localhost", "/"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")


def test_api_clients_get_401_not_a_redirect(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    answer = httpx.get(
        f"http://127.0.0.1:{node.port}/api",
        headers={"host": "app.localhost", "accept": "application/json"},
    )
    assert answer.status_code == 401
    assert answer.json()["status"] == 401


def test_deleting_a_user_ends_their_sessions(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    assert browser.go(node.url("app.localhost", "/"))[0].status_code == 200
    node.warren("user", "del", "alice")
    _page, at = browser.go(node.url("app.localhost", "/"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")


def test_key_rotation_keeps_sessions_and_signs_new_ones(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    early = node.browser()
    page, at = early.go(node.url("app.localhost", "/"))
    sign_in(early, node, page, at, "alice")
    old_kid = jwt.get_unverified_header(early.cookies("app.localhost")["warren_session"])["kid"]
    assert "signing with" in node.warren("keys", "rotate")
    later = node.browser()
    # The portal looks at its key directory at most once a second (core.auth.signing): until
    # it has, it signs with the old key. Its JWKS lists the new key once it has looked.
    jwks = f"{node.portal}/.well-known/jwks.json"
    eventually(lambda: len(later.request("GET", jwks).json()["keys"]) == 2)
    page, at = later.go(node.url("wiki.localhost", "/"))
    landed, _ = sign_in(later, node, page, at, "alice")
    assert landed.status_code == 200
    new_kid = jwt.get_unverified_header(later.cookies("wiki.localhost")["warren_session"])["kid"]
    assert new_kid != old_kid
    assert early.go(node.url("app.localhost", "/"))[0].status_code == 200
    kids = [key["kid"] for key in later.request("GET", jwks).json()["keys"]]
    assert kids == [new_kid, old_kid]


@pytest.mark.parametrize(
    "rd", ["https://evil.example/", "//evil.example", "/relative", "javascript:alert(1)"]
)
def test_the_portal_refuses_foreign_destinations(start_node: LoopbackNodeFactory, rd: str) -> None:
    node = start_node()
    answer = node.browser().request("GET", f"{node.portal}/sign-in?rd={quote(rd, safe='')}")
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_no_line_of_the_open_redirect_corpus_leads_anywhere(
    start_node: LoopbackNodeFactory,
) -> None:
    """Signed in, the portal redirects at once to a good destination: the most tempting place
    for an open redirect. Every corpus line is refused (a resource on the corpus's allowed
    domain, www.whitelisteddomain.tld, is configured)."""
    from tests.core.auth.test_redirects import corpus

    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    good = browser.request(
        "GET",
        f"{node.portal}/sign-in?rd={quote(node.url('www.whitelisteddomain.tld', '/'), safe='')}",
    )
    assert good.status_code == 303
    assert good.headers["location"].startswith(
        node.url("www.whitelisteddomain.tld", "/.warren/callback?code=")
    )
    followed = []
    for line in corpus():
        answer = browser.request("GET", f"{node.portal}/sign-in?rd={quote(line, safe='')}")
        if answer.status_code != 400 or "location" in answer.headers:
            followed.append((line, answer.status_code, answer.headers.get("location")))
    assert followed == []


def test_a_sign_out_without_the_forms_token_changes_nothing(
    start_node: LoopbackNodeFactory,
) -> None:
    """What a sibling subdomain's page could make the browser send: the cookies ride along
    (same-site), the token the sign-out page carries does not."""
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    browser.go(node.url("app.localhost", "/.warren/logout"))  # sets the page's token cookie
    sibling = "http://evil.localhost"
    guess = {"csrf": "x" * 43}
    forged: list[tuple[str, dict[str, str], dict[str, str]]] = [  # url, form, headers
        (node.url("app.localhost", "/.warren/logout"), {}, {}),
        (node.url("app.localhost", "/.warren/logout?csrf=" + "x" * 43), {}, {"origin": sibling}),
        (f"{node.portal}/sign-out", guess, {}),
        (f"{node.portal}/.warren/logout", {}, {"origin": sibling}),
    ]
    for url, form, headers in forged:
        answer = browser.request("POST", url, data=form, **headers)
        assert answer.status_code == 403, url
        assert signed_in_on(browser, node, "app.localhost"), url
    assert "warren_portal" in browser.cookies("auth.localhost")
    home, _ = browser.go(f"{node.portal}/")
    assert "You are signed in" in home.text
    _done, at = sign_out(browser, node, "app.localhost")
    assert at.startswith(f"{node.portal}/signed-out")
    assert not signed_in_on(browser, node, "app.localhost")


def test_a_group_change_reaches_signed_in_users_within_a_second(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("alice", groups=("ops", "staff"))
    browser = node.browser()
    page, at = browser.go(node.url("ops.localhost", "/"))
    landed, _ = sign_in(browser, node, page, at, "alice")
    assert landed.status_code == 200
    node.warren("user", "groups", "alice", "--remove", "ops")
    assert until(3, lambda: browser.request("GET", node.url("ops.localhost")).status_code == 403)
    tag = uuid.uuid4().hex
    browser.go(node.url("app.localhost", f"/{tag}"))
    assert headers_seen(backend, tag)["remote-groups"] == "staff"
    node.warren("user", "groups", "alice", "--add", "ops")
    assert until(3, lambda: signed_in_on(browser, node, "ops.localhost"))


def test_a_disabled_user_is_signed_out_and_cannot_sign_in(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    assert signed_in_on(browser, node, "app.localhost")
    ended = browser.cookies("auth.localhost")["warren_portal"]
    node.warren("user", "disable", "alice")
    # The revocation is in the shared state: the very next request is refused.
    assert not signed_in_on(browser, node, "app.localhost")
    page, at = browser.go(node.url("app.localhost", "/"))
    refused, _ = sign_in(browser, node, page, at, "alice")  # the right password
    assert refused.status_code == 401
    assert browser.cookies("auth.localhost")["warren_portal"] == ended  # no new sign-in
    node.warren("user", "enable", "alice")
    page, at = browser.go(node.url("app.localhost", "/"))
    assert until(3, lambda: sign_in(browser, node, page, at, "alice")[0].status_code == 200)


def test_sessions_are_listed_and_revoked_everywhere_from_the_command_line(
    start_node: LoopbackNodeFactory,
) -> None:
    node = start_node()
    node.add_user("alice")
    node.add_user("bob")
    browsers = {}
    for label, user in (("alice-1", "alice"), ("alice-2", "alice"), ("bob", "bob")):
        browser = node.browser()
        page, at = browser.go(node.url("app.localhost", "/"))
        sign_in(browser, node, page, at, user)
        browsers[label] = browser
    header, *rows = node.warren("sessions", "list").splitlines()
    assert header.split() == ["USER", "SESSION", "STARTED", "EXPIRES", "HOW", "FROM"]
    assert sorted(row.split()[0] for row in rows) == ["alice", "alice", "bob"]
    assert {row.split()[4] for row in rows} == {"password"}
    assert {row.split()[5] for row in rows} == {"127.0.0.1"}
    _header, *mine = node.warren("sessions", "list", "--user", "alice").splitlines()
    assert len(mine) == 2
    first = jwt.decode(
        browsers["alice-1"].cookies("app.localhost")["warren_session"],
        options={"verify_signature": False},
    )["sid"]
    assert first in {row.split()[1] for row in mine}
    assert "revoked" in node.warren("sessions", "revoke", first)
    assert not signed_in_on(browsers["alice-1"], node, "app.localhost")
    assert signed_in_on(browsers["alice-2"], node, "app.localhost")
    assert first not in node.warren("sessions", "list")
    node.warren("sessions", "revoke", "--user", "alice")
    assert not signed_in_on(browsers["alice-2"], node, "app.localhost")
    assert signed_in_on(browsers["bob"], node, "app.localhost")
    _header, *left = node.warren("sessions", "list").splitlines()
    assert [row.split()[0] for row in left] == ["bob"]


def test_ipv6_clients_are_regulated_per_64(start_node: LoopbackNodeFactory) -> None:
    """A client behind the trusted proxy picks a new address in its /64 for every attempt."""
    node = start_node(settings="regulation: {per_user: [100/minute], per_ip: [3/minute]}\n")
    portal = f"http://127.0.0.1:{node.portal_port}"
    with httpx.Client(headers={"host": f"auth.localhost:{node.port}"}, timeout=30) as client:
        page = client.get(f"{portal}/sign-in")
        csrf = form_value(page.text, "csrf")

        def attempt(address: str, user: str) -> int:
            answer = client.post(
                f"{portal}/sign-in",
                data={"csrf": csrf, "username": user, "password": "wrong"},
                headers={"x-forwarded-for": address},
            )
            return answer.status_code

        for index in range(1, 4):
            assert attempt(f"2001:db8:1:2::{index}", f"user{index}") == 401
        assert attempt("2001:db8:1:2:ffff:ffff:ffff:fffe", "someone") == 429
        assert attempt("2001:db8:1:3::1", "someone") == 401  # the next /64 is someone else
