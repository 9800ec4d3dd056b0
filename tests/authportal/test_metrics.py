"""The portal's metrics (core.metrics.portal, authportal.metrics) on a real node: sign-ins by
outcome and sessions active, scraped from the portal's own listener, and its health endpoints.
No password, code or cookie value ever reaches them."""

import httpx
import pyotp
from prometheus_client.parser import text_string_to_metric_families

from demo import processes
from tests.authportal.test_portal import sign_in
from tests.support.browser import form_value
from tests.support.loopback_node import PASSWORD, LoopbackNodeFactory
from tests.support.waiting import eventually


def scrape(port: int) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def test_sign_ins_by_outcome_and_sessions_active(start_node: LoopbackNodeFactory) -> None:
    port = processes.free_port()
    node = start_node(
        settings=(
            f"metrics: {{portal: 127.0.0.1:{port}, gateway: off}}\n"
            "regulation: {per_user: [3/minute, 5/hour], per_ip: [50/minute]}\n"
        )
    )
    eventually(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200)
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    secret = pyotp.random_base32(32)
    node.add_user("alice")
    node.add_user("bob")
    node.add_user("carol", totp=secret)
    _, before = scrape(port)

    for user in ("alice", "bob"):  # two sign-ins that succeed
        browser = node.browser()
        page, at = browser.go(node.url("app.localhost", "/"))
        answer, _ = sign_in(browser, node, page, at, user)
        assert answer.status_code == 200
    browser = node.browser()
    page, at = browser.go(node.url("app.localhost", "/"))
    for _ in range(3):  # three wrong passwords, then the name is locked out
        answer, _ = sign_in(browser, node, page, at, "bob", "wrong-password-value")
        assert answer.status_code == 401
    locked, _ = sign_in(browser, node, page, at, "bob")
    assert locked.status_code == 429
    two_step = node.browser()
    page, at = two_step.go(node.url("app.localhost", "/"))
    step, _ = sign_in(two_step, node, page, at, "carol")
    wrong, _ = two_step.go(
        f"{node.portal}/sign-in/code",
        "POST",
        data={"csrf": form_value(step.text, "csrf"), "code": "000000"},
    )
    assert wrong.status_code == 401

    text, after = scrape(port)

    def moved(outcome: str) -> float:
        key = ("warren_signins_total", frozenset({("outcome", outcome)}))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("succeeded") == 2
    assert moved("failed") == 3
    assert moved("locked-out") == 1
    assert moved("second-factor-failed") == 1
    # Counted in the sign-in state at most every few seconds, whatever the scrape interval.
    eventually(lambda: scrape(port)[1][("warren_sessions_active", frozenset())] == 2)
    assert after[("warren_policy_reloads_total", frozenset())] == 0
    cookies = [*browser.cookies("auth.localhost").values()]
    for secret_text in (PASSWORD, "wrong-password-value", secret, *cookies):
        assert secret_text not in text
