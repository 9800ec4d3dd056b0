"""What became of a request, read once it is answered: which step answered it, the refusal it got
(with the reference its error page shows), and the decision in one word. The access log and the
metrics both read it here, so they never disagree."""

from collections.abc import Callable
from dataclasses import dataclass

from mitmproxy import http

from addons.exchange import Exchange, NotYetDecided
from core.policy.rules import Outcome

_REFUSAL = "warren.refusal"
_ON_ERROR_ANSWER = "warren.on_error_answer"

# The decisions metrics and the access log name: the rules' verdict, or what answered before it.
ALLOW, DENY, PASS, SIGN_IN, RATE_LIMITED, NONE = (
    "allow",
    "deny",
    "pass",
    "sign-in",
    "rate-limited",
    "none",
)
DECISIONS = (ALLOW, DENY, PASS, SIGN_IN, RATE_LIMITED, NONE)
_VERDICT = {Outcome.ALLOW: ALLOW, Outcome.DENY: DENY, Outcome.SIGN_IN: PASS}


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer of Warren's own error page: `reason` is for the log, `reference` is what the
    page shows the user (and what they report)."""

    status: int
    reason: str
    reference: str


def record_refusal(flow: http.HTTPFlow, refusal: Refusal) -> None:
    flow.metadata[_REFUSAL] = refusal


def refusal_of(flow: http.HTTPFlow) -> Refusal | None:
    found = flow.metadata.get(_REFUSAL)
    return found if isinstance(found, Refusal) else None


def decision_of(flow: http.HTTPFlow, exchange: Exchange | None) -> str:
    """allow, deny, pass (a `pass` rule or none matched, and sign-in let it through), sign-in (sent
    to sign in), rate-limited, or none (answered before the rules: a probe, an unknown host, a
    malformed request)."""
    if exchange is None:
        return NONE
    status = flow.response.status_code if flow.response is not None else 0
    answered_by = exchange.answered_by
    if answered_by == "ratelimit" or status == 429:
        return RATE_LIMITED
    if answered_by == "auth":
        return SIGN_IN if status in (302, 303, 401) else DENY
    verdict = exchange.decided_verdict
    if verdict is None:
        return NONE
    if answered_by == "identify":
        return DENY
    return _VERDICT[verdict.outcome]


def after_error_answer(flow: http.HTTPFlow, then: Callable[[], None]) -> None:
    """Call `then` once the HTTP layer has answered the flow's failure (addons.layers): mitmproxy
    calls the `error` hook before that answer, and its page's status and reference exist only
    after it."""
    waiting: list[Callable[[], None]] = flow.metadata.setdefault(_ON_ERROR_ANSWER, [])
    waiting.append(then)


def error_answered(flow: http.HTTPFlow) -> None:
    """The HTTP layer has answered the failure, or decided not to (the response had begun)."""
    for then in flow.metadata.pop(_ON_ERROR_ANSWER, ()):
        then()


def resource_name(exchange: Exchange) -> str | None:
    """The resource the request was for; None when it was answered before one was decided (a
    probe, an unknown host, the sites' API)."""
    try:
        return exchange.resource.name
    except NotYetDecided:
        return None
