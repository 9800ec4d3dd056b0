"""core.install.answers: flags first, then what a person types, then the defaults; a value that
does not check out is said with its flag."""

import re
from collections.abc import Iterator

import pytest

from core.install.answers import Answers, InitError, MissingFlag, collect


def test_flags_and_defaults() -> None:
    answers = collect({"domain": "Example.COM.", "email": "admin@example.com"}, None)
    assert answers == Answers(
        domain="example.com",
        email="admin@example.com",
        admin="admin",
        site="home",
        wg_host="wg.example.com",
        ipv4=None,
        ipv6=None,
    )
    assert answers.portal_host == "auth.example.com"
    assert answers.wg_endpoint == "wg.example.com:51820"


def test_an_address_for_wireguard_is_written_as_an_endpoint() -> None:
    given = {"domain": "example.com", "email": "a@example.com", "wg_host": "[2001:db8::7]"}
    assert collect(given, None).wg_endpoint == "[2001:db8::7]:51820"


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"email": "a@example.com"}, "--domain is needed"),
        ({"domain": "example.com"}, "--email is needed"),
        ({"domain": "*.example.com", "email": "a@b.c"}, "--domain: '*.example.com' is not a dom"),
        ({"domain": "localhost", "email": "a@b.c"}, "--domain: 'localhost' is not a domain"),
        ({"domain": "example.com", "email": "nobody"}, "--email: 'nobody' is not an e-mail"),
        ({"domain": "example.com", "email": "a@b.c", "admin": "Root"}, "--admin: 'Root' is not"),
        ({"domain": "example.com", "email": "a@b.c", "site": "my site"}, "--site: 'my site'"),
        ({"domain": "example.com", "email": "a@b.c", "ipv4": "2001:db8::1"}, "--ipv4: '2001"),
    ],
)
def test_without_a_terminal_a_missing_or_bad_flag_is_named(
    given: dict[str, str | None], error: str
) -> None:
    with pytest.raises(InitError, match="^" + re.escape(error)) as raised:
        collect(given, None)
    assert isinstance(raised.value, MissingFlag) == error.endswith("is needed")


def test_on_a_terminal_a_bad_answer_is_asked_again_and_defaults_are_offered() -> None:
    typed: Iterator[str] = iter(
        ["not a domain", "example.com", "admin@example.com", "", "", "192.0.2.10", ""]
    )
    asked: list[tuple[str, str | None]] = []

    def ask(prompt: str, default: str | None) -> str:
        asked.append((prompt.split(" (")[0], default))
        return next(typed) or (default or "")

    answers = collect({"admin": "ops"}, ask)
    assert (answers.domain, answers.admin, answers.ipv4, answers.ipv6) == (
        "example.com",
        "ops",  # given as a flag: not asked
        "192.0.2.10",
        None,
    )
    assert asked == [
        ("Domain", None),
        ("Domain", None),
        ("E-mail", None),
        ("Name of the home server's site", "home"),
        ("DNS-only name", "wg.example.com"),
        ("This node's public IPv4 address", ""),
        ("This node's public IPv6 address", ""),
    ]
