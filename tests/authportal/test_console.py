"""The admin console on a real portal behind a real gateway.

Who may reach it is checked over HTTP on every console URL the application's router has (so a
page added later is covered without naming it here), with every method. What it shows and
changes is checked in headless Chromium on a node with a real sidecar and a site online through
a real tunnel (network namespaces, as tests/sidecar/test_tunnel.py): an admin signs in with
TOTP, sees the site online and a refusal just made, revokes another user's session, and that
user's next request is refused. Screenshots go to artifacts/console/ (printed).
"""

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from authportal.app import make_app
from authportal.console.access import is_console
from authportal.state import Portal
from core import control
from core.auth.users import User, UsersFile, hash_secret, load_users, update
from core.settings import load_settings
from demo import processes
from tests.support import browser as http
from tests.support.browser import form_value
from tests.support.ci import ARTIFACTS, in_ci
from tests.support.loopback_node import PASSWORD, LoopbackNode, LoopbackNodeFactory
from tests.support.netlab import Lab
from tests.support.netns import require
from tests.support.tunnellab import GATEWAY_PORT, NODE_FOR_USER, TunnelLab, secret_and_hash
from tests.support.waiting import eventually

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ARTIFACTS / "console"


def console_routes(node: LoopbackNode) -> list[tuple[str, str]]:
    """(method, path) of every console route the portal's application has."""
    portal = Portal.from_settings(load_settings(node.config))
    try:
        app = make_app(portal)
        found = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and is_console(route.resource.canonical)
        }
    finally:
        asyncio.run(portal.services.close())
    return sorted(found)


def sign_in(
    browser: http.Browser, node: LoopbackNode, user: str, secret: str | None = None
) -> None:
    form, _ = browser.go(f"{node.portal}/sign-in")
    data = {"csrf": form_value(form.text, "csrf"), "username": user, "password": PASSWORD}
    page, at = browser.go(f"{node.portal}/sign-in", "POST", data=data, origin=node.portal)
    if secret is not None:
        assert at == f"{node.portal}/sign-in/code", browser.visited
        code = {"csrf": form_value(page.text, "csrf"), "code": pyotp.TOTP(secret).now()}
        page, at = browser.go(f"{node.portal}/sign-in/code", "POST", data=code, origin=node.portal)
    assert at == f"{node.portal}/", browser.visited


def csrf_of(browser: http.Browser, node: LoopbackNode) -> str:
    return browser.cookies("auth.localhost")["warren_csrf"]


def test_only_admins_who_signed_in_with_two_step_verification_reach_the_console(
    start_node: LoopbackNodeFactory,
) -> None:
    node = start_node()
    routes = console_routes(node)
    pages = [path for method, path in routes if method == "GET"]
    actions = [path for method, path in routes if method == "POST"]
    # What this test covers is what the router has: the pages and the changes they make.
    assert {"/admin", "/admin/sessions", "/admin/users", "/admin/shares"} <= set(pages)
    assert "/admin/sessions/revoke" in actions
    anywhere = [*pages, "/admin/no-such-page"]

    anonymous = node.browser()
    for path in anywhere:
        answer = anonymous.request("GET", f"{node.portal}{path}")
        assert answer.status_code == 303, path
        target = urlsplit(answer.headers["location"])
        assert target.path == "/sign-in"
        assert parse_qs(target.query)["rd"] == [f"{node.portal}{path}"]
    for path in actions:
        answer = anonymous.request("POST", f"{node.portal}{path}", origin=node.portal)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in")

    secret, other_secret = pyotp.random_base32(32), pyotp.random_base32(32)
    node.add_user("erin", groups=("admins",), totp=secret)  # the admin
    node.add_user("carol", groups=("ops",), totp=other_secret)  # 2FA, not an admin
    node.add_user("dave", groups=("admins",))  # an admin without a second factor
    why = {"carol": "Only members of the admins group", "dave": "two-step verification"}
    for name, factor in (("carol", other_secret), ("dave", None)):
        browser = node.browser()
        sign_in(browser, node, name, factor)
        token = csrf_of(browser, node)
        # Every route with its own method (HEAD too), and a path that matches none; a form
        # carries a valid token: membership is what is missing.
        for method, path in [*routes, ("GET", "/admin/no-such-page"), ("DELETE", "/admin")]:
            form = {"csrf": token} if method == "POST" else None
            answer = browser.request(method, f"{node.portal}{path}", data=form, origin=node.portal)
            assert answer.status_code == 403, (name, method, path)
            assert answer.headers["cache-control"] == "no-store"
        assert why[name] in browser.request("GET", f"{node.portal}/admin").text

    admin = node.browser()
    sign_in(admin, node, "erin", secret)
    overview = admin.request("GET", f"{node.portal}/admin")
    for path in pages:
        answer = admin.request("GET", f"{node.portal}{path}")
        assert answer.status_code == 200, (path, answer.text[:2000])
        assert answer.headers["cache-control"] == "no-store"
        assert "script-src" not in answer.headers["content-security-policy"]
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script" not in answer.text
    assert admin.request("GET", f"{node.portal}/admin/no-such-page").status_code == 404
    # This node has no sidecar: said on the page, which still answers.
    assert re.search(r"Sidecar</dt><dd><span class=\"bad\">not reachable", overview.text)

    # Every change needs the form's token and the portal's own origin.
    token = csrf_of(admin, node)
    revoke = f"{node.portal}/admin/sessions/revoke-user"
    without = admin.request("POST", revoke, data={"user": "carol"}, origin=node.portal)
    assert without.status_code == 403
    foreign = admin.request(
        "POST", revoke, data={"user": "carol", "csrf": token}, origin="http://evil.localhost"
    )
    assert foreign.status_code == 403
    done = admin.request("POST", revoke, data={"user": "carol", "csrf": token}, origin=node.portal)
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/sessions?done=user-sessions"

    # Taken out of the group, the admin is out of the console at once, session or not.
    node.warren("user", "groups", "erin", "ops")
    assert admin.request("GET", f"{node.portal}/admin").status_code == 403


# --- in a browser, on a node with a site online ------------------------------------------------

PORTAL_PORT, BACKEND = 9180, 8000
PORTAL_URL = f"https://auth.test:{GATEWAY_PORT}"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--host-resolver-rules=MAP *.test {NODE_FOR_USER}",  # every name of the policy: the node
]


def node_policy(secret_hash: str) -> str:
    return f"""\
version: 1
sites:
  home: {{secret_sha256: "{secret_hash}"}}
resources:
  portal:
    host: auth.test
    auth: public
    targets: [{{host: 127.0.0.1, port: {PORTAL_PORT}}}]
  app:
    host: app.test
    auth: {{share_links: true}}
    targets: [{{site: home, host: 127.0.0.1, port: {BACKEND}}}]
    rules:
      - {{action: deny, path: "/private/*"}}
"""


def add_user(lab: TunnelLab, name: str, groups: tuple[str, ...], totp: str | None = None) -> None:
    user = User(password=hash_secret(PASSWORD), groups=groups, totp=totp)
    update(
        lab.config.parent / "users.yaml", lambda users: UsersFile(users={**users.users, name: user})
    )


@pytest.fixture(scope="module")
def site_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TunnelLab]:
    """A node (gateway, sidecar, portal) and a site online through its tunnel."""
    require()
    require_chromium()  # before building anything for a browser that is not there
    lab = Lab()
    built: TunnelLab | None = None
    try:
        built = TunnelLab.build(lab, tmp_path_factory.mktemp("console"))
        secret, secret_hash = secret_and_hash()
        built.write_node(node_policy(secret_hash))
        with built.config.open("a") as config:
            config.write(
                f"public_url: {PORTAL_URL}\nusers_file: users.yaml\n"
                f"portal: {{listen: 127.0.0.1:{PORTAL_PORT}}}\n"
            )
        built.start_in_site(processes.backend(BACKEND, "site"), "backend", BACKEND)
        built.start_node()
        portal = built.node.start(
            processes.warren("portal", "--config", str(built.config)),
            log=built.directory / "portal.log",
        )
        built.wait_for(built.node, PORTAL_PORT, portal)
        built.start_agent("home", secret)
        eventually(lambda: built is not None and built.site_online("home"), timeout=60)
        yield built
    except BaseException:
        if built is not None:
            print(built.logs())
        raise
    finally:
        lab.close()


def require_chromium() -> None:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        reason = "Debian's chromium is not installed (./dev test installs it)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium(site_node: TunnelLab) -> Iterator["Browser"]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots of the console: {SHOTS}")
    # Started inside the user's namespace, Playwright's driver and the Chromium it starts live
    # there: the browser reaches the node as a user's would, over the link between them.
    with site_node.user.entered():
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


def shot(page: "Page", name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def new_page(browser: "Browser") -> "Page":
    context = browser.new_context(
        java_script_enabled=False, ignore_https_errors=True, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def open_page(page: "Page", name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=name).click()


def sign_in_page(page: "Page", name: str, secret: str | None = None) -> None:
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if secret is not None:
        page.get_by_label("Verification code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Verify").click()


def test_an_admin_sees_the_node_and_ends_a_users_session(
    site_node: TunnelLab, chromium: "Browser"
) -> None:
    from playwright.sync_api import expect

    secret = pyotp.random_base32(32)
    add_user(site_node, "erin", ("admins",), secret)
    add_user(site_node, "bob", ("staff",))
    add_user(site_node, "carol", ("ops",))
    app = f"https://app.test:{GATEWAY_PORT}"

    # bob signs in and works on the application, which lives on the site.
    bob = new_page(chromium)
    bob.goto(f"{app}/reports")
    sign_in_page(bob, "bob")
    expect(bob).to_have_url(f"{app}/reports")
    expect(bob.get_by_role("row", name=re.compile(r"Remote-User\s+bob"))).to_be_visible()
    # ... and is refused a private page: the error page gives the reference to report.
    tag = uuid.uuid4().hex[:8]
    refused = bob.goto(f"{app}/private/{tag}")
    assert refused is not None
    assert refused.status == 403
    reference = re.search(r"Reference: ([^<\s]+)", bob.content())
    assert reference, bob.content()

    # The admin opens the console: sign-in with the second factor first, then back here.
    admin = new_page(chromium)
    admin.goto(f"{PORTAL_URL}/admin")
    expect(admin).to_have_url(re.compile(rf"^{re.escape(PORTAL_URL)}/sign-in\?rd="))
    sign_in_page(admin, "erin", secret)
    expect(admin).to_have_url(f"{PORTAL_URL}/admin")
    expect(admin.get_by_role("heading", name="Overview")).to_be_visible()
    status = control.call(site_node.state_dir / "gateway.sock", "status")
    expect(admin.get_by_text(status["digest"])).to_be_visible()  # the running policy's version
    shot(admin, "1-overview")

    open_page(admin, "Sites")
    row = admin.get_by_role("row", name=re.compile(r"^home\s+online\s+100\.89\.0\.2"))
    expect(row).to_be_visible()
    expect(row).to_contain_text(re.compile(r"\d+[smh] ago"))
    shot(admin, "2-sites")

    open_page(admin, "Refusals")
    row = admin.get_by_role("row").filter(has_text=reference.group(1))
    expect(row).to_contain_text(f"/private/{tag}")
    expect(row).to_contain_text("403")
    expect(row).to_contain_text("resources.app.rules[0]")
    shot(admin, "3-refusals")
    row.get_by_role("link", name="resources.app.rules[0]").click()
    expect(admin).to_have_url(f"{PORTAL_URL}/admin/resources#resources.app.rules[0]")
    expect(admin.locator("[id='resources.app.rules[0]']")).to_contain_text("/private/*")
    target = admin.get_by_role("row").filter(has_text=f"http://127.0.0.1:{BACKEND}")
    expect(target).to_contain_text("home")
    expect(target).to_contain_text("up")  # its site is online: the gateway routes to it
    shot(admin, "4-resources")

    open_page(admin, "Sessions")
    revoke = admin.get_by_role("button", name=re.compile(r"^Revoke session \S+ of bob$"))
    expect(revoke).to_have_count(1)
    shot(admin, "5-sessions")
    revoke.click()
    expect(admin.get_by_role("status")).to_have_text(re.compile("The session was revoked"))
    expect(admin.get_by_role("button", name=re.compile("of bob$"))).to_have_count(0)
    shot(admin, "6-session-revoked")

    # bob's next request is refused: back to the sign-in page.
    bob.goto(f"{app}/reports")
    expect(bob).to_have_url(re.compile(rf"^{re.escape(PORTAL_URL)}/sign-in\?rd="))
    expect(bob.get_by_role("heading", name="Sign in")).to_be_visible()

    # Users: disable, enable and regroup, as `warren user` does.
    open_page(admin, "Users")
    admin.get_by_role("button", name="Disable carol").click()
    expect(admin.get_by_role("status")).to_have_text(re.compile("disabled"))
    assert load_users(site_node.config.parent / "users.yaml").users["carol"].disabled
    admin.get_by_role("button", name="Enable carol").click()
    assert not load_users(site_node.config.parent / "users.yaml").users["carol"].disabled
    admin.get_by_role("textbox", name="Groups of carol").fill("ops, dev")
    admin.get_by_role("button", name="Save the groups of carol").click()
    expect(admin.get_by_role("status")).to_have_text(re.compile("groups were saved"))
    assert load_users(site_node.config.parent / "users.yaml").users["carol"].groups == (
        "ops",
        "dev",
    )
    shot(admin, "7-users")

    # Share links: one made by `warren share` is listed, and revoked from here.
    made = subprocess.run(
        [*processes.warren("share", "app", "--expires", "1h"), "--config", str(site_node.config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    link_id = re.search(r"^id (\S+)$", made, re.M)
    assert link_id, made
    open_page(admin, "Share links")
    expect(admin.get_by_role("row").filter(has_text=link_id.group(1))).to_contain_text("app.test/")
    shot(admin, "8-shares")
    token = re.search(r"warren_share=(\S+)", made)
    assert token
    assert token.group(1) not in admin.content()  # a link's token is never shown
    link = re.search(r"^https://\S+$", made, re.M)
    assert link, made
    shared = new_page(chromium)
    shared.goto(link.group(0))  # it works, without signing in
    expect(shared.get_by_role("heading", name=re.compile("Hello from"))).to_be_visible()
    admin.get_by_role("button", name=f"Revoke share link {link_id.group(1)}").click()
    expect(admin.get_by_role("status")).to_have_text(re.compile("share link was revoked"))
    # Opened again now, the link is refused.
    again = shared.goto(link.group(0))
    assert again is not None
    assert again.status == 403
    expect(shared.get_by_text(re.compile("share link .* was revoked"))).to_be_visible()
    assert link_id.group(1) not in admin.content()
