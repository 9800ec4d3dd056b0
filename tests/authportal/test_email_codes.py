"""Signing in with an e-mail code, through a real gateway and portal and a real SMTP server
(aiosmtpd on loopback): the code arrives and works once, only for the resource that lists the
address, expires, is regulated; an address not on the list gets the same answer and no mail;
the mail server down, or without the STARTTLS it should offer, is said plainly."""

import copy
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from core.auth.emailcodes import code_key
from core.auth.signinstate import SqliteKV
from demo import processes
from tests.authportal.test_console import CHROMIUM, require_chromium
from tests.support import smtp
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.ci import ARTIFACTS
from tests.support.loopback_node import LoopbackNode, LoopbackNodeFactory
from tests.support.smtp import MailServer, body_of
from tests.support.waiting import eventually

SENDER = "warren@example.com"
ANN = "ann@example.com"
PAGE_SAID = "a code is on"


def policy(backend: Backend) -> str:
    target = f"[{{host: 127.0.0.1, port: {backend.port}}}]"
    return f"""\
  mail:
    host: mail.localhost
    auth: {{emails: [Ann@Example.com], email_domains: [partner.example]}}
    targets: {target}
"""


def smtp_settings(port: int, extra: str = "") -> str:
    return f"smtp: {{host: 127.0.0.1, port: {port}, security: none, sender: {SENDER}{extra}}}\n"


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = smtp.start()
    yield server
    server.stop()


def code_page(
    browser: Browser, node: LoopbackNode, address: str, tag: str | None = None
) -> tuple[httpx.Response, str]:
    """From the resource to the portal's sign-in page, then its e-mail form: the answer page
    (the 303 followed) and the path the resource was asked for."""
    tag = tag or f"/{uuid.uuid4().hex}"
    host = "mail.localhost"
    sign_in, at = browser.go(node.url(host, tag))
    assert at.startswith(f"{node.portal}/sign-in"), browser.visited
    assert 'action="/sign-in/email"' in sign_in.text, sign_in.text
    answer = browser.request(
        "POST",
        f"{node.portal}/sign-in/email",
        data={
            "csrf": form_value(sign_in.text, "csrf"),
            "rd": form_value(sign_in.text, "rd"),
            "email": address,
        },
        origin=node.portal,
    )
    if answer.status_code != 303:
        return answer, tag
    assert answer.headers["location"] == "/sign-in/email/code"
    page, _ = browser.go(f"{node.portal}/sign-in/email/code")
    return page, tag


def enter(
    browser: Browser, node: LoopbackNode, page: httpx.Response, code: str
) -> tuple[httpx.Response, str]:
    return browser.go(
        f"{node.portal}/sign-in/email/code",
        "POST",
        data={"csrf": form_value(page.text, "csrf"), "code": code},
        origin=node.portal,
    )


def headers_seen(backend: Backend, tag: str) -> dict[str, str]:
    (seen,) = backend.received(tag)
    return {name.lower(): value for name, value in seen["headers"]}


def stored_code(node: LoopbackNode, address: str) -> dict[str, str]:
    kv = SqliteKV(node.directory / "state" / "signin.sqlite3")
    return kv.get_many_now([code_key("mail", address)])


def test_the_code_arrives_works_once_and_opens_only_its_resource(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    node = start_node(policy(backend), smtp_settings(mail_server.port))
    other, _ = node.browser().go(node.url("app.localhost"))
    assert "/sign-in/email" not in other.text  # app lists no addresses: no e-mail form

    browser = node.browser()
    page, tag = code_page(browser, node, "  Ann@Example.COM ")
    assert page.status_code == 200, page.text
    assert f"If <strong>{ANN}</strong> may use <strong>mail.localhost</strong>" in page.text
    (mail,) = mail_server.to(ANN)
    assert mail["From"] == SENDER
    body = body_of(mail)
    assert "mail.localhost" in body
    assert "10 minutes" in body
    assert "http" not in body  # no link: the code is typed where it was asked for
    code = mail_server.code_for(ANN)
    assert code not in mail["Subject"]
    assert set(stored_code(node, ANN))
    assert code not in str(stored_code(node, ANN))
    before = copy.deepcopy(browser.jar)  # the pending cookie, to try the code a second time

    landed, at = enter(browser, node, page, code)
    assert landed.status_code == 200, browser.visited
    assert at == node.url("mail.localhost", tag)
    seen = headers_seen(backend, tag)
    assert seen["remote-user"] == ANN
    assert seen["remote-email"] == ANN
    assert seen["remote-groups"] == ""
    claims: dict[str, Any] = jwt.decode(
        seen["x-warren-assertion"], options={"verify_signature": False}
    )
    assert claims["amr"] == ["email"]
    assert claims["idp"] == "email"
    assert "warren_email" not in browser.cookies("auth.localhost")

    replay = Browser(node.port, jar=before)
    again, _ = enter(replay, node, page, code)
    assert again.status_code == 401, again.text
    assert "no code waiting" in again.text
    assert "warren_portal" not in replay.cookies("auth.localhost")

    # Signed in at the portal as the address: a resource that does not list it stays shut,
    # whether it admits any signed-in person (app) or a group (ops).
    for host in ("app.localhost", "ops.localhost"):
        refused, at = browser.go(node.url(host, f"/{uuid.uuid4().hex}"))
        assert refused.status_code == 403, (host, browser.visited)
        assert urlsplit(at).hostname == host
    listing = node.warren("sessions", "list")
    assert ANN in listing
    assert "email-code" in listing

    # Revoked like any sign-in: the next requests are refused, on the resource too.
    assert browser.request("GET", node.url("mail.localhost", "/again")).status_code == 200
    node.warren("sessions", "revoke", "--user", ANN)
    eventually(
        lambda: browser.request("GET", node.url("mail.localhost", "/again")).status_code != 200
    )


class SharingBrowser(Browser):
    """A browser that also sends a cookie set for a parent domain (`Domain=.localhost`) to the
    hosts below it, as real browsers do."""

    def request(
        self, method: str, url: str, *, data: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        host = urlsplit(url).hostname or ""
        for domain, cookies in list(self.jar.items()):
            if host.endswith("." + domain):
                self.jar.setdefault(host, {}).update(cookies)
        return super().request(method, url, data=data, **headers)


def test_a_session_shared_across_subdomains_still_opens_only_what_lists_the_address(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    node = start_node(
        policy(backend),
        smtp_settings(mail_server.port) + "session: {cookie_domain: .localhost}\n",
    )
    browser = SharingBrowser(node.port)
    page, tag = code_page(browser, node, "bob@partner.example")
    landed, _ = enter(browser, node, page, mail_server.code_for("bob@partner.example"))
    assert landed.status_code == 200, browser.visited
    assert headers_seen(backend, tag)["remote-email"] == "bob@partner.example"
    assert "warren_session" in browser.cookies("localhost")  # the shared cookie
    refused = browser.request("GET", node.url("app.localhost", "/shared"))
    assert refused.status_code == 403, refused.text


def test_an_address_not_on_the_list_gets_the_same_page_and_no_mail(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    node = start_node(policy(backend), smtp_settings(mail_server.port))
    browser = node.browser()
    listed, tag = code_page(browser, node, ANN)
    assert mail_server.to(ANN)
    for outsider in ("eve@example.com", "eve@sub.partner.example", "ann@example.org"):
        page, _ = code_page(browser, node, outsider, tag)
        assert page.status_code == 200
        assert page.text.replace(outsider, ANN) == listed.text
        # The mail is sent before the answer: had there been one, it would be here now.
        assert mail_server.to(outsider) == []
        refused, _ = enter(browser, node, page, "12345678")
        assert refused.status_code == 401


def test_wrong_codes_are_regulated(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    node = start_node(policy(backend), smtp_settings(mail_server.port))
    browser = node.browser()
    page, _ = code_page(browser, node, "carol@partner.example")
    code = mail_server.code_for("carol@partner.example")
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    # regulation.per_user is 5/minute: the request counted once, then four wrong codes.
    for _ in range(4):
        answer, _ = enter(browser, node, page, wrong)
        assert answer.status_code == 401, answer.text
        assert "not right" in answer.text
    locked, _ = enter(browser, node, page, wrong)
    assert locked.status_code == 429, locked.text
    still, _ = enter(browser, node, page, code)  # even the right one, while locked
    assert still.status_code == 429
    assert "warren_portal" not in browser.cookies("auth.localhost")
    eventually(lambda: '"reason": "code-wrong"' in node.logs() and "locked-out" in node.logs())


def test_the_code_expires(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    node = start_node(policy(backend), smtp_settings(mail_server.port, ", code_lifetime: 2s"))
    browser = node.browser()
    page, _ = code_page(browser, node, ANN)
    assert "2 seconds" in body_of(mail_server.to(ANN)[-1])
    code = mail_server.code_for(ANN)
    eventually(lambda: not stored_code(node, ANN), timeout=30, interval=0.2)
    late, _ = enter(browser, node, page, code)
    assert late.status_code == 401, late.text
    assert "expired" in late.text
    assert 'href="/sign-in?rd=' in late.text  # from there, ask for a new one
    assert "warren_portal" not in browser.cookies("auth.localhost")


def test_mail_server_down_is_a_clear_503_and_leaves_no_code(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    closed = processes.free_port()  # nothing listens there
    node = start_node(policy(backend), smtp_settings(closed, ", timeout: 3s"))
    for _ in range(2):  # and again at once: the failed send did not use up the address's turn
        answer, _ = code_page(node.browser(), node, ANN)
        assert answer.status_code == 503, answer.text
        assert "Warren could not send the e-mail" in answer.text
        assert "warren_email" not in answer.headers.get("set-cookie", "")
        assert stored_code(node, ANN) == {}
    eventually(lambda: '"reason": "mail-not-sent"' in node.logs())


def test_starttls_with_a_login(
    start_node: LoopbackNodeFactory, backend: Backend, tmp_path: Path
) -> None:
    server = smtp.start(tmp_path, starttls=True, login=("warren", "mail secret"))
    try:
        (tmp_path / "smtp-password").write_text("mail secret\n")
        settings = (
            f"smtp: {{host: 127.0.0.1, port: {server.port}, security: starttls, "
            f"sender: {SENDER}, username: warren, password_file: {tmp_path}/smtp-password, "
            f"ca_bundle: {server.ca}}}\n"
        )
        node = start_node(policy(backend), settings)
        browser = node.browser()
        page, tag = code_page(browser, node, ANN)
        assert page.status_code == 200, page.text
        landed, _ = enter(browser, node, page, server.code_for(ANN))
        assert landed.status_code == 200, browser.visited
        assert headers_seen(backend, tag)["remote-email"] == ANN
    finally:
        server.stop()


def test_starttls_wanted_but_not_offered_sends_nothing(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    settings = smtp_settings(mail_server.port).replace("security: none", "security: starttls")
    node = start_node(policy(backend), settings)
    answer, _ = code_page(node.browser(), node, ANN)
    assert answer.status_code == 503, answer.text
    assert mail_server.to(ANN) == []  # never in plain text
    assert re.search(r"STARTTLS|starttls", node.logs())


def test_in_chromium_without_javascript(
    start_node: LoopbackNodeFactory, backend: Backend, mail_server: MailServer
) -> None:
    """The two forms as a person uses them: a real browser's cookies (SameSite, Origin) and
    the portal's script-free pages. Screenshots go to artifacts/signin/."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from tests.authportal.test_browser import ARGS

    shots = ARTIFACTS / "signin"
    shots.mkdir(parents=True, exist_ok=True)
    node = start_node(policy(backend), smtp_settings(mail_server.port))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": 1000, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(node.url("mail.localhost", "/album?year=2026"))
            expect(page).to_have_url(re.compile(rf"^{re.escape(node.portal)}/sign-in\?rd="))
            page.screenshot(path=str(shots / "email-0-sign-in.png"), full_page=True)
            page.get_by_label("Your e-mail address").fill("Ann@Example.com")
            page.get_by_role("button", name="Send me a code").click()
            expect(page).to_have_url(f"{node.portal}/sign-in/email/code")
            expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
            page.screenshot(path=str(shots / "email-1-code-form.png"), full_page=True)
            page.get_by_label("Code from the e-mail").fill("0000 0000")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("not right")
            page.get_by_label("Code from the e-mail").fill(mail_server.code_for(ANN))
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(node.url("mail.localhost", "/album?year=2026"))
            assert backend.received("/album?year=2026")
        finally:
            browser.close()
