"""A form submission is the form's own only with its origin, not cross-site or same-site, and
with the cookie's token brought back equal."""

import pytest

from core.auth import csrf

TOKEN = csrf.new_token()


def refusal(**overrides: str | None) -> str | None:
    given: dict[str, str | None] = {
        "origin": "https://app.example",
        "fetch_site": "same-origin",
        "cookie": TOKEN,
        "submitted": TOKEN,
        **overrides,
    }
    submitted = given.pop("submitted")
    assert submitted is not None
    return csrf.refusal(expected_origin="https://app.example", submitted=submitted, **given)


def test_the_forms_own_submission_passes() -> None:
    assert refusal() is None
    assert refusal(origin=None, fetch_site=None) is None  # older browsers send neither


@pytest.mark.parametrize(
    "origin", ["https://APP.example", "https://app.example:443", " https://app.example "]
)
def test_origins_compare_as_browsers_compare_them(origin: str) -> None:
    assert refusal(origin=origin) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"origin": "https://evil.example"}, "from origin 'https://evil.example'"),
        ({"origin": "http://app.example"}, "from origin 'http://app.example'"),
        ({"origin": "https://app.example:8443"}, "from origin 'https://app.example:8443'"),
        ({"fetch_site": "cross-site"}, "a cross-site request"),
        ({"fetch_site": "same-site"}, "a same-site request"),  # a sibling subdomain
        ({"cookie": None}, "no CSRF cookie"),
        ({"cookie": ""}, "no CSRF cookie"),
        ({"submitted": csrf.new_token()}, "the CSRF token does not match"),
    ],
)
def test_anything_else_is_refused_with_the_reason(
    overrides: dict[str, str | None], reason: str
) -> None:
    assert refusal(**overrides) == reason


def test_a_cookies_token_is_kept_only_when_it_could_be_one_of_ours() -> None:
    assert csrf.usable(csrf.new_token())
    assert not csrf.usable(None)
    assert not csrf.usable("short")
    assert not csrf.usable("x" * 101)
    assert csrf.new_token() != csrf.new_token()
