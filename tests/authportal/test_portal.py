"""The portal and the gateway as separate processes, driven over HTTP like a browser would."""

import uuid
from urllib.parse import quote

import httpx
import jwt
import pyotp
import pytest

from tests.authportal.conftest import PASSWORD, Node, NodeFactory, form_value
from tests.conftest import Backend
from tests.support.browser import Browser


def sign_in(
    browser: Browser,
    node: Node,
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


def headers_seen(backend: Backend, tag: str) -> dict[str, str]:
    (seen,) = backend.received(tag)
    return {name.lower(): value for name, value in seen["headers"]}


def test_sign_in_lands_on_the_page_asked_for_with_identity_headers(
    start_node: NodeFactory, backend: Backend
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


def test_one_sign_in_covers_every_resource(start_node: NodeFactory, backend: Backend) -> None:
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


def test_a_signed_in_user_outside_the_resources_groups_gets_403(start_node: NodeFactory) -> None:
    node = start_node()
    node.add_user("alice", groups=("staff",))
    browser = node.browser()
    page, at = browser.go(node.url("ops.localhost", "/"))
    denied, _ = sign_in(browser, node, page, at, "alice")
    assert denied.status_code == 403
    assert "signed in as alice" in denied.text


def test_two_step_verification(start_node: NodeFactory, backend: Backend) -> None:
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


def test_unknown_user_and_wrong_password_get_the_same_answer(start_node: NodeFactory) -> None:
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


def test_failed_sign_ins_lock_the_name_out(start_node: NodeFactory) -> None:
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


def test_forms_need_their_csrf_token(start_node: NodeFactory) -> None:
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


def test_sign_out_on_a_resource_ends_the_session_everywhere(start_node: NodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    assert browser.go(node.url("wiki.localhost", "/"))[0].status_code == 200
    ask, _ = browser.go(node.url("app.localhost", "/.warren/logout"))
    assert 'method="post"' in ask.text
    done, at = browser.go(node.url("app.localhost", "/.warren/logout"), "POST")
    assert at.startswith(f"{node.portal}/signed-out")
    assert "You are signed out" in done.text
    assert browser.cookies("app.localhost") == {}
    # The wiki still holds its cookie, but the session behind it has ended.
    assert "warren_session" in browser.cookies("wiki.localhost")
    _page, at = browser.go(node.url("wiki.localhost", "/"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")


def test_sign_out_at_the_portal(start_node: NodeFactory) -> None:
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


def test_api_clients_get_401_not_a_redirect(start_node: NodeFactory) -> None:
    node = start_node()
    answer = httpx.get(
        f"http://127.0.0.1:{node.port}/api",
        headers={"host": "app.localhost", "accept": "application/json"},
    )
    assert answer.status_code == 401
    assert answer.json()["status"] == 401


def test_deleting_a_user_ends_their_sessions(start_node: NodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    sign_in(browser, node, page, at, "alice")
    assert browser.go(node.url("app.localhost", "/"))[0].status_code == 200
    node.warren("user", "del", "alice")
    _page, at = browser.go(node.url("app.localhost", "/"))
    assert at.startswith(f"{node.portal}/sign-in?rd=")


def test_key_rotation_keeps_sessions_and_signs_new_ones(start_node: NodeFactory) -> None:
    node = start_node()
    node.add_user("alice")
    early = node.browser()
    page, at = early.go(node.url("app.localhost", "/"))
    sign_in(early, node, page, at, "alice")
    old_kid = jwt.get_unverified_header(early.cookies("app.localhost")["warren_session"])["kid"]
    assert "signing with" in node.warren("keys", "rotate")
    later = node.browser()
    page, at = later.go(node.url("wiki.localhost", "/"))
    landed, _ = sign_in(later, node, page, at, "alice")
    assert landed.status_code == 200
    new_kid = jwt.get_unverified_header(later.cookies("wiki.localhost")["warren_session"])["kid"]
    assert new_kid != old_kid
    assert early.go(node.url("app.localhost", "/"))[0].status_code == 200
    kids = [
        key["kid"]
        for key in later.request("GET", f"{node.portal}/.well-known/jwks.json").json()["keys"]
    ]
    assert kids == [new_kid, old_kid]


@pytest.mark.parametrize(
    "rd", ["https://evil.example/", "//evil.example", "/relative", "javascript:alert(1)"]
)
def test_the_portal_refuses_foreign_destinations(start_node: NodeFactory, rd: str) -> None:
    node = start_node()
    answer = node.browser().request("GET", f"{node.portal}/sign-in?rd={quote(rd, safe='')}")
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_no_line_of_the_open_redirect_corpus_leads_anywhere(start_node: NodeFactory) -> None:
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
