"""Warren's own answers (addons.respond): refusals as JSON or a page by Accept, with a reference
that is also in the log; redirects and Warren's pages, none of them cached. On mitmproxy's test
flows (tflow), and through the in-process pack (tests.support.inprocess)."""

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from addons import respond
from tests.support.inprocess import flow, pack, run


def request(*headers: tuple[str, str]) -> http.HTTPFlow:
    fields = [(b"host", b"app.example"), *((k.encode(), v.encode()) for k, v in headers)]
    return tflow.tflow(req=tutils.treq(headers=http.Headers(fields), path=b"/reports"))


def answered(made: http.HTTPFlow) -> http.Response:
    assert made.response is not None
    return made.response


def test_api_clients_get_json_and_browsers_get_a_page(tmp_path: Path) -> None:
    with pack(tmp_path) as (context, _):
        api = run(context, flow("app.example", "/admin/"))
        assert api.response is not None
        assert json.loads(api.response.content or b"")["status"] == 403
        browser = run(context, flow("app.example", "/admin/", headers=[("Accept", "text/html")]))
        assert browser.response is not None
        assert browser.response.headers["content-type"].startswith("text/html")
        assert b"Access denied" in (browser.response.content or b"")


def test_a_refusal_carries_the_reference_its_log_line_has(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, page = request(), request(("accept", "text/html"))
    with caplog.at_level(logging.INFO, logger="warren.gateway"):
        respond.refuse(api, 403, detail="Not for you.", reason="rule 3")
        respond.refuse(page, 403, reason="rule 3")
    body = json.loads(answered(api).content or b"")
    assert body["detail"] == "Not for you."
    found = re.search(rb"Reference: ([0-9a-f]{12})", answered(page).content or b"")
    assert found is not None
    first, second = (record.getMessage() for record in caplog.records)
    assert first == f"GET app.example/reports -> 403 rule 3 [ref {body['reference']}]"
    assert second.endswith(f"[ref {found.group(1).decode()}]")
    assert body["reference"] != found.group(1).decode()  # one per answer


def test_server_errors_are_logged_as_warnings_and_refusals_as_information(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="warren.gateway"):
        respond.refuse(request(), 404)
        respond.refuse(request(), 503, reason="no healthy target")
    assert [record.levelno for record in caplog.records] == [logging.INFO, logging.WARNING]


def test_warrens_answers_are_never_cached_and_carry_the_headers_asked_for() -> None:
    made = request()
    respond.refuse(made, 401, headers={"www-authenticate": 'Warren realm="app"'})
    response = answered(made)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == 'Warren realm="app"'


def test_a_client_waiting_for_100_continue_gets_the_answer_and_no_body_goes_upstream() -> None:
    answers: list[Callable[[http.HTTPFlow], None]] = [
        lambda made: respond.refuse(made, 413),
        lambda made: respond.redirect(made, "/elsewhere"),
        lambda made: respond.answer_page(made, 200, "<p>signed out</p>"),
    ]
    for answer in answers:
        made = request(("expect", "100-continue"))
        made.request.stream = True
        answer(made)
        assert "expect" not in made.request.headers
        assert made.request.stream is False
        assert made.response is not None


def test_a_redirect_sets_warrens_cookies_and_leaks_no_referrer() -> None:
    made = request()
    respond.redirect(made, "https://auth.example/sign-in?rd=x", cookies=["a=1", "b=2"])
    response = answered(made)
    assert response.status_code == 302
    assert response.headers["location"] == "https://auth.example/sign-in?rd=x"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    after_post = request()
    respond.redirect(after_post, "/", status=303)
    assert answered(after_post).status_code == 303
    assert "set-cookie" not in answered(after_post).headers


def test_warrens_pages_run_no_script_and_are_never_framed() -> None:
    made = request()
    respond.answer_page(made, 200, "<p>Sign out?</p>", cookies=["warren_csrf=t"])
    response = answered(made)
    assert response.content == b"<p>Sign out?</p>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == respond.CSP.decode()
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["set-cookie"] == "warren_csrf=t"
