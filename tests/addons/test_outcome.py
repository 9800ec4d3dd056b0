"""What became of a request (addons.outcome), read the way the access log and the metrics read
it: through the whole pack in-process, on the policy of tests.support.inprocess."""

from pathlib import Path

import pytest

from addons.exchange import exchange_of
from addons.outcome import decision_of, refusal_of
from tests.support.inprocess import flow as made_flow
from tests.support.inprocess import pack, respond, run

RATE_LIMITED = """\
version: 1
resources:
  app:
    host: app.example
    auth: public
    targets: [{host: 192.0.2.10, port: 8080}]
    rate_limits: [{limit: 1/minute}]
"""


@pytest.mark.parametrize(
    ("host", "path", "peer", "decision", "answered_by", "rule"),
    [
        # no rule matched: passed on to the resource's auth, which is public
        ("app.example", "/", "198.51.100.7", "pass", None, None),
        ("app.example", "/admin/x", "198.51.100.7", "deny", "rules", "resources.app.rules[0]"),
        ("app.example", "/", "203.0.113.200", "deny", "rules", "rules[0]"),
        ("private.example", "/status", "198.51.100.7", "allow", None, "resources.private.rules[0]"),
        ("private.example", "/", "198.51.100.7", "sign-in", "auth", None),
        ("nowhere.example", "/", "198.51.100.7", "none", "routing", None),
    ],
)
def test_the_decision_and_who_answered(
    tmp_path: Path,
    host: str,
    path: str,
    peer: str,
    decision: str,
    answered_by: str | None,
    rule: str | None,
) -> None:
    with pack(tmp_path) as warren:
        flow = respond(warren.context, run(warren.context, made_flow(host, path, peer=peer)))
    exchange = exchange_of(flow)
    assert exchange is not None
    assert decision_of(flow, exchange) == decision
    assert exchange.answered_by == answered_by
    verdict = exchange.decided_verdict
    assert (verdict.rule.key if verdict is not None and verdict.rule else None) == rule


def test_a_refusal_keeps_the_reference_its_page_shows(tmp_path: Path) -> None:
    with pack(tmp_path) as warren:
        flow = run(warren.context, made_flow("app.example", "/admin/x"))
    refusal = refusal_of(flow)
    assert flow.response is not None
    assert refusal is not None
    assert refusal.status == flow.response.status_code == 403
    assert refusal.reason == "resources.app.rules[0]"
    assert refusal.reference in (
        flow.response.get_text(strict=False) or ""
    )  # what the user reports


def test_an_allowed_request_has_no_refusal_and_a_rate_limited_one_says_so(
    tmp_path: Path,
) -> None:
    with pack(tmp_path, RATE_LIMITED) as warren:
        first = run(warren.context, made_flow("app.example"))
        second = run(warren.context, made_flow("app.example"))
    assert refusal_of(first) is None
    assert decision_of(first, exchange_of(first)) == "pass"
    assert second.response is not None
    assert second.response.status_code == 429
    assert decision_of(second, exchange_of(second)) == "rate-limited"
