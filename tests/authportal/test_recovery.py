"""TOTP recovery codes over HTTP through a real gateway and portal: `warren user 2fa` prints ten,
each signs in once in place of the TOTP code (amr pwd+rec+mfa), and `--recovery` ends the old
set."""

import re
import uuid

import httpx
import jwt
import pyotp

from core.auth import recovery
from core.auth.users import load_users
from tests.support.backend import Backend
from tests.support.browser import Browser, form_value
from tests.support.loopback_node import PASSWORD, LoopbackNode, LoopbackNodeFactory

CODE = re.compile(r"^  ([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})$", re.MULTILINE)


def codes_in(output: str) -> list[str]:
    found = CODE.findall(output)
    assert len(found) == recovery.COUNT, output
    return found


def to_code_step(node: LoopbackNode, path: str) -> tuple[Browser, httpx.Response]:
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", path))
    step, at = browser.go(
        f"{node.portal}/sign-in",
        "POST",
        data={
            "csrf": form_value(page.text, "csrf"),
            "rd": form_value(page.text, "rd"),
            "username": "carol",
            "password": PASSWORD,
        },
        origin=node.portal,
    )
    assert at == f"{node.portal}/sign-in/code", browser.visited
    return browser, step


def enter(browser: Browser, node: LoopbackNode, step: httpx.Response, code: str) -> httpx.Response:
    answer, _ = browser.go(
        f"{node.portal}/sign-in/code",
        "POST",
        data={"csrf": form_value(step.text, "csrf"), "code": code},
        origin=node.portal,
    )
    return answer


def amr_seen(backend: Backend, tag: str) -> list[str]:
    (seen,) = backend.received(tag)
    headers = {name.lower(): value for name, value in seen["headers"]}
    claims = jwt.decode(headers["x-warren-assertion"], options={"verify_signature": False})
    return list(claims["amr"])


def test_a_recovery_code_signs_in_once_in_place_of_the_totp_code(
    start_node: LoopbackNodeFactory, backend: Backend
) -> None:
    node = start_node()
    node.add_user("carol")
    output = node.warren("user", "2fa", "carol", "--no-confirm")
    codes = codes_in(output)
    users_file = node.directory / "users.yaml"
    stored = load_users(users_file).users["carol"].recovery
    assert len(stored) == recovery.COUNT
    assert all(code not in users_file.read_text() for code in codes)  # only their hashes

    browser, step = to_code_step(node, "/")
    assert "recovery code works here too" in step.text
    assert enter(browser, node, step, "0000-0000-0000").status_code == 401  # not one of them

    tag = uuid.uuid4().hex
    browser, step = to_code_step(node, f"/{tag}")
    typed = codes[3].upper().replace("-", " ")  # as someone might type it from paper
    landed = enter(browser, node, step, typed)
    assert landed.status_code == 200, browser.visited
    assert amr_seen(backend, tag) == ["pwd", "rec", "mfa"]
    assert len(load_users(users_file).users["carol"].recovery) == recovery.COUNT - 1

    again, step = to_code_step(node, "/")
    refused = enter(again, node, step, codes[3])
    assert refused.status_code == 401
    assert "already used" in refused.text
    assert "warren_portal" not in again.cookies("auth.localhost")

    # The TOTP code still works beside the codes.
    secret = load_users(users_file).users["carol"].totp
    assert secret is not None
    browser, step = to_code_step(node, "/")
    assert enter(browser, node, step, pyotp.TOTP(secret).now()).status_code == 200


def test_a_fresh_set_ends_the_old_codes(start_node: LoopbackNodeFactory) -> None:
    node = start_node()
    node.add_user("carol")
    old = codes_in(node.warren("user", "2fa", "carol", "--no-confirm"))
    secret = load_users(node.directory / "users.yaml").users["carol"].totp
    output = node.warren("user", "2fa", "carol", "--recovery")
    new = codes_in(output)
    assert "the old ones no longer work" in output
    assert not set(old) & set(new)
    # Only the codes were replaced: the TOTP seed is the one enrolled before.
    assert load_users(node.directory / "users.yaml").users["carol"].totp == secret

    browser, step = to_code_step(node, "/")
    assert enter(browser, node, step, old[0]).status_code == 401
    browser, step = to_code_step(node, "/")
    assert enter(browser, node, step, new[0]).status_code == 200

    node.warren("user", "2fa", "carol", "--disable")
    assert load_users(node.directory / "users.yaml").users["carol"].recovery == ()


def test_recovery_codes_are_random_hashed_and_matched_by_their_hash() -> None:
    codes = recovery.new_codes()
    assert len(set(codes)) == recovery.COUNT
    assert all(re.fullmatch(r"[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){2}", c) for c in codes)
    stored = recovery.digests(codes)
    assert recovery.matching(stored, codes[5]) == stored[5]
    # Look-alikes typed for what is printed count as the same character.
    assert recovery.matching(stored, codes[5].replace("0", "O").replace("1", "l")) == stored[5]
    assert recovery.matching(stored, "123456") is None
    assert recovery.matching(stored, "zzzz-zzzz-zzzu") is None  # u is not in the alphabet
    assert recovery.matching((), codes[0]) is None
