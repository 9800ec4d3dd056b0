"""Passkeys in a real browser: headless Chromium with JavaScript on and a virtual authenticator
(CTAP2, built in, with user verification) through the DevTools protocol, against a real gateway
and portal on loopback. Register a passkey after the password, sign out, sign in with it (no
username) and land on the resource; use it instead of the TOTP code; and refuse what a relying
party must (WebAuthn L2 §7.2): a replayed assertion, one made for another origin, one whose
counter went backwards (a cloned authenticator). Screenshots go to artifacts/signin/."""

import base64
import hashlib
import json
import re
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, CDPSession, Page, expect, sync_playwright

from core.auth.users import UsersFile, load_users, update
from tests.authportal.test_browser import ARGS, CHROMIUM, SHOTS, shot
from tests.support.backend import Backend
from tests.support.loopback_node import PASSWORD, LoopbackNode, LoopbackNodeFactory

REFUSED = "That passkey was not accepted. Please try again."


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def with_authenticator(chromium: Browser) -> tuple[Page, CDPSession, str]:
    context = chromium.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return page, cdp, added["authenticatorId"]


def credentials(cdp: CDPSession, authenticator: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    return list(found["credentials"])


def sign_in_with_password(page: Page, node: LoopbackNode, name: str) -> None:
    page.goto(f"{node.portal}/sign-in")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page, node: LoopbackNode) -> None:
    page.goto(f"{node.portal}/sign-out")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()


def amr_seen(backend: Backend, tag: str) -> list[str]:
    (seen,) = backend.received(tag)
    headers = {name.lower(): value for name, value in seen["headers"]}
    claims = jwt.decode(headers["x-warren-assertion"], options={"verify_signature": False})
    return list(claims["amr"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_POST = """async ([url, body]) => {
  const answer = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                   body: JSON.stringify(body)});
  return [answer.status, await answer.json()];
}"""


def post(page: Page, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A fetch from the portal's own page: its cookies, its Origin, as the script sends it."""
    status, answer = page.evaluate(_POST, [path, body])
    return int(status), answer


def csrf_of(page: Page) -> str:
    return str(page.locator("[data-passkey]").first.get_attribute("data-csrf"))


def forged(
    credential: dict[str, Any], node: LoopbackNode, challenge: str, origin: str, count: int
) -> dict[str, Any]:
    """An assertion signed with the virtual authenticator's own private key (exported through
    the DevTools protocol), with the client data and counter this test chooses."""
    key = serialization.load_der_private_key(base64.b64decode(credential["privateKey"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    client_data = json.dumps(
        {"type": "webauthn.get", "challenge": challenge, "origin": origin, "crossOrigin": False}
    ).encode()
    rp_hash = hashlib.sha256(b"auth.localhost").digest()
    authenticator_data = rp_hash + bytes([0x01 | 0x04]) + struct.pack(">I", count)  # UP, UV
    signature = key.sign(
        authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
    )
    credential_id = b64url(base64.b64decode(credential["credentialId"]))
    return {
        "id": credential_id,
        "rawId": credential_id,
        "type": "public-key",
        "clientExtensionResults": {},
        "response": {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(authenticator_data),
            "signature": b64url(signature),
        },
    }


def test_register_a_passkey_then_sign_in_with_it_and_refuse_forgeries(
    chromium: Browser, start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("alice", groups=("ops",))
    page, cdp, authenticator = with_authenticator(chromium)

    # Signed in with the password: the home page offers "Add a passkey".
    sign_in_with_password(page, node, "alice")
    expect(page).to_have_url(f"{node.portal}/")
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    page.get_by_label("Name of the new passkey").fill("laptop")
    shot(page, "passkey-1-add")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("button", name="Remove laptop")).to_be_visible()
    shot(page, "passkey-2-added")
    (passkey,) = load_users(node.directory / "users.yaml").users["alice"].passkeys
    assert passkey.name == "laptop"
    (stored,) = credentials(cdp, authenticator)
    assert stored["isResidentCredential"]
    assert b64url(base64.b64decode(stored["credentialId"])) == passkey.id

    # This sign-in was the password alone, one factor: not enough to add another passkey now
    # that the account has one.
    page.get_by_label("Name of the new passkey").fill("second")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Sign in with your second factor first, then add the passkey."
    )
    assert len(load_users(node.directory / "users.yaml").users["alice"].passkeys) == 1
    assert len(credentials(cdp, authenticator)) == 1
    sign_out(page, node)

    # With a passkey the password alone no longer signs in: the code page asks for the passkey,
    # and alice has no TOTP, so there is no code to type.
    sign_in_with_password(page, node, "alice")
    expect(page).to_have_url(f"{node.portal}/sign-in/code")
    expect(page.get_by_label("Verification code")).to_have_count(0)
    expect(page.get_by_role("button", name="Use your passkey")).to_be_visible()
    assert "warren_portal" not in {c["name"] for c in page.context.cookies()}
    page.get_by_role("button", name="Use your passkey").click()
    expect(page).to_have_url(f"{node.portal}/")
    expect(page.get_by_role("button", name="Remove laptop")).to_be_visible()
    sign_out(page, node)

    # Username-less: the button, the authenticator, and on to the resource asked for.
    tag = uuid.uuid4().hex
    page.goto(node.url("app.localhost", f"/{tag}"))
    expect(page).to_have_url(re.compile(rf"^{re.escape(node.portal)}/sign-in\?rd="))
    shot(page, "passkey-3-sign-in")
    with page.expect_request(f"{node.portal}/passkeys/sign-in") as sent:
        page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(node.url("app.localhost", f"/{tag}"))
    expect(page.get_by_role("row", name=re.compile(r"Remote-User\s+alice"))).to_be_visible()
    assert amr_seen(backend, tag) == ["hwk", "mfa"]  # user verified: two factors in one
    captured = json.loads(sent.value.post_data or "{}")

    # Replayed: the challenge it answered was taken when it was used.
    sign_out(page, node)
    page.goto(f"{node.portal}/sign-in")
    csrf = csrf_of(page)
    assert post(page, "/passkeys/sign-in/options", {"csrf": "not-the-token"})[0] == 403
    status, _ = post(page, "/passkeys/sign-in/options", {"csrf": csrf})
    assert status == 200
    status, answer = post(page, "/passkeys/sign-in", {**captured, "csrf": csrf})
    assert (status, answer) == (401, {"error": REFUSED})

    # Made for another origin (by a page that could get the key to sign): refused, while the
    # same assertion for the portal's origin is accepted, so the origin is what decided.
    stored = credentials(cdp, authenticator)[0]
    status, options = post(page, "/passkeys/sign-in/options", {"csrf": csrf})
    evil = forged(stored, node, options["challenge"], "http://evil.localhost:1", 1000)
    status, answer = post(page, "/passkeys/sign-in", {"csrf": csrf, "credential": evil})
    assert (status, answer) == (401, {"error": REFUSED})
    status, options = post(page, "/passkeys/sign-in/options", {"csrf": csrf})
    good = forged(stored, node, options["challenge"], node.portal, 1000)
    status, answer = post(page, "/passkeys/sign-in", {"csrf": csrf, "credential": good})
    assert status == 200, answer
    assert answer["location"] == "/"  # no resource asked for: the portal's home

    # The counter went backwards (the real authenticator is at a few uses, the portal saw
    # 1000): a cloned key, refused (§7.2 step 21), in the browser too.
    sign_out(page, node)
    page.goto(f"{node.portal}/sign-in")
    csrf = csrf_of(page)
    status, options = post(page, "/passkeys/sign-in/options", {"csrf": csrf})
    stale = forged(stored, node, options["challenge"], node.portal, 999)
    status, answer = post(page, "/passkeys/sign-in", {"csrf": csrf, "credential": stale})
    assert (status, answer) == (401, {"error": REFUSED})
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert")).to_have_text(REFUSED)
    shot(page, "passkey-4-refused")
    assert "not greater than current count" in node.logs()
    assert "warren_portal" not in {c["name"] for c in page.context.cookies()}
    page.context.close()


def test_a_passkey_instead_of_the_totp_code_and_removing_it(
    chromium: Browser, start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("carol")
    page, _cdp, _authenticator = with_authenticator(chromium)
    sign_in_with_password(page, node, "carol")
    page.get_by_label("Name of the new passkey").fill("phone")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("button", name="Remove phone")).to_be_visible()
    secret = pyotp.random_base32(32)

    def enrol(users: UsersFile) -> UsersFile:
        carol = users.users["carol"].model_copy(update={"totp": secret})
        return users.model_copy(update={"users": {**users.users, "carol": carol}})

    update(node.directory / "users.yaml", enrol)
    sign_out(page, node)

    tag = uuid.uuid4().hex
    page.goto(node.url("app.localhost", f"/{tag}"))
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{node.portal}/sign-in/code")
    shot(page, "passkey-5-second-factor")
    page.get_by_role("button", name="Use a passkey instead").click()
    expect(page).to_have_url(node.url("app.localhost", f"/{tag}"))
    assert amr_seen(backend, tag) == ["pwd", "hwk", "mfa"]

    page.goto(f"{node.portal}/")
    page.get_by_role("button", name="Remove phone").click()
    expect(page.get_by_text("None yet.")).to_be_visible()
    assert load_users(node.directory / "users.yaml").users["carol"].passkeys == ()
    page.context.close()


def test_without_javascript_the_passkey_parts_stay_hidden(
    chromium: Browser, start_node: LoopbackNodeFactory
) -> None:
    node = start_node()
    node.add_user("dave")
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{node.portal}/sign-in")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    sign_in_with_password(page, node, "dave")
    # (Playwright turns script off after parsing starts, so <noscript> is in the page, unshown.)
    assert '<noscript><p class="small">Adding a passkey needs JavaScript.' in page.content()
    expect(page.get_by_role("button", name="Add a passkey")).to_be_hidden()
    context.close()
