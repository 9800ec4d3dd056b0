"""Warren's cookie names over http and https, reading one out of a Cookie header, and keeping
them from applications."""

from core.auth.cookies import (
    SESSION,
    clear_cookie,
    cookie_name,
    is_warren_cookie,
    read_cookie,
    set_cookie,
    without_warren_cookies,
)


def test_names_carry_the_prefix_that_binds_them_over_https() -> None:
    assert cookie_name(SESSION, secure=False) == "warren_session"
    assert cookie_name(SESSION, secure=True) == "__Host-warren_session"
    assert cookie_name(SESSION, secure=True, domain=".example.com") == "__Secure-warren_session"
    assert all(
        is_warren_cookie(cookie_name(SESSION, s, d)) for s in (True, False) for d in (None, ".x")
    )
    assert not is_warren_cookie("__Host-grafana_session")


def test_read_cookie_finds_the_name_not_the_tail_of_a_longer_one() -> None:
    header = 'my_warren_session=forged; warren_session="real"; other=1'
    assert read_cookie(header, "warren_session") == "real"
    assert read_cookie("warren_session=first; warren_session=second", "warren_session") == "first"
    assert read_cookie("a=1", "warren_session") is None
    assert read_cookie(None, "warren_session") is None


def test_applications_get_every_cookie_but_warrens() -> None:
    header = "a=1; warren_session=s; __Host-warren_csrf=c; b=2;; __Secure-warren_share=x"
    assert without_warren_cookies(header) == "a=1; b=2"
    assert without_warren_cookies(header, keep=["warren_session"]) == "a=1; warren_session=s; b=2"


def test_set_and_clear() -> None:
    assert set_cookie("n", "v", max_age=60, secure=False) == (
        "n=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
    )
    assert set_cookie(
        "n", "v", max_age=-5, secure=True, domain=".example.com", same_site="Strict"
    ) == ("n=v; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure; Domain=.example.com")
    assert clear_cookie("n", secure=True).startswith("n=; Path=/; Max-Age=0;")
