"""A real browser (Debian's Chromium, driven by Playwright) through a real gateway and portal on
loopback: open a resource, sign in with password and TOTP, land on the page, sign out, be sent
to sign-in again. JavaScript is off throughout: the pages must work without it. Screenshots go
to artifacts/signin/."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.support.ci import ARTIFACTS, in_ci
from tests.support.loopback_node import PASSWORD, LoopbackNodeFactory

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ARTIFACTS / "signin"

if not CHROMIUM.exists() or shutil.which("chromium") is None:
    reason = "Debian's chromium is not installed (./dev test installs it)"
    if in_ci():
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_with_password_and_totp_then_sign_out(
    chromium: Browser, start_node: LoopbackNodeFactory
) -> None:
    node = start_node()
    secret = pyotp.random_base32(32)
    node.add_user("alice", groups=("ops",), totp=secret)
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1000, "height": 800}
    )
    page = context.new_page()
    page.set_default_timeout(30_000)

    page.goto(node.url("app.localhost", "/reports?month=11"))
    expect(page).to_have_url(re.compile(rf"^{re.escape(node.portal)}/sign-in\?rd="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("app.localhost")).to_be_visible()
    shot(page, "1-sign-in")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The username or password is not right.")
    expect(page.get_by_label("Username")).to_have_value("alice")
    shot(page, "2-wrong-password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{node.portal}/sign-in/code")
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    shot(page, "3-two-step")

    page.get_by_label("Verification code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(node.url("app.localhost", "/reports?month=11"))
    expect(page.get_by_role("heading", name="Hello from the demo application")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"Remote-User\s+alice"))).to_be_visible()
    shot(page, "4-on-the-resource")

    page.goto(node.url("wiki.localhost", "/"))  # one sign-in covers every resource
    expect(page).to_have_url(node.url("wiki.localhost", "/"))

    page.goto(node.url("app.localhost", "/.warren/logout"))
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    shot(page, "5-sign-out")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    shot(page, "6-signed-out")

    for host in ("app.localhost", "wiki.localhost"):
        page.goto(node.url(host, "/reports"))
        expect(page).to_have_url(re.compile(rf"^{re.escape(node.portal)}/sign-in\?rd="))
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert "warren_portal" not in cookies
    context.close()


_CONTRAST = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (element) => {
    for (let node = element; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const element of document.querySelectorAll("h1, h2, p, label, button, a, footer, input")) {
    const fg = luminance(rgb(getComputedStyle(element).color));
    const bg = luminance(background(element));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    worst.push([element.tagName + ":" + element.textContent.trim().slice(0, 30), ratio]);
  }
  return worst;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_sign_in_page_is_accessible(
    chromium: Browser, start_node: LoopbackNodeFactory, scheme: str
) -> None:
    node = start_node()
    context = chromium.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(node.url("app.localhost", "/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # Every field has a label; the keyboard goes name, password, button, in that order.
    focused = [page.evaluate("document.activeElement.id")]
    for _ in range(2):
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert focused == ["username", "password", "Sign in"]
    assert page.evaluate("document.documentElement.lang") == "en"
    low = [(what, ratio) for what, ratio in page.evaluate(_CONTRAST) if ratio < 4.5]
    assert low == [], f"text below 4.5:1 contrast in {scheme} mode"
    shot(page, f"sign-in-{scheme}")
    context.close()
