"""Post-sign-in destinations: only configured resource hosts, written plainly."""

from urllib.parse import unquote_plus

import pytest

from core.auth.redirects import safe_local_path, safe_target
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from tests.support.testdata import shared_testdata

POLICY = parse_policy(
    """\
version: 1
resources:
  whitelisted:
    host: www.whitelisteddomain.tld
    targets: [{host: 127.0.0.1, port: 1}]
  apps:
    host: "*.apps.example.com"
    targets: [{host: 127.0.0.1, port: 1}]
""",
    Capabilities(),
)
PORTS = frozenset({8443})


def corpus() -> list[str]:
    path = shared_testdata("open-redirects", "openredirects.txt")
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    return [unquote_plus(line) for line in lines if line.strip()]


def test_every_line_of_the_open_redirect_corpus_is_refused() -> None:
    attempts = corpus()
    assert len(attempts) > 500
    accepted = [line for line in attempts if safe_target(line, POLICY, PORTS, False) is not None]
    assert accepted == []


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("https://www.whitelisteddomain.tld/", "https://www.whitelisteddomain.tld/"),
        ("http://www.whitelisteddomain.tld", "http://www.whitelisteddomain.tld/"),
        (
            "https://www.whitelisteddomain.tld:8443/a/b?c=d#frag",
            "https://www.whitelisteddomain.tld:8443/a/b?c=d",
        ),
        ("https://x.apps.example.com/", "https://x.apps.example.com/"),
    ],
)
def test_configured_hosts_are_accepted(candidate: str, expected: str) -> None:
    target = safe_target(candidate, POLICY, PORTS, False)
    assert target is not None
    assert target.url == expected


@pytest.mark.parametrize(
    "candidate",
    [
        "https://WWW.whitelisteddomain.tld/",  # not written plainly
        "https://www.whitelisteddomain.tld./",
        "https://www.whitelisteddomain.tld:9999/",  # a port Warren is not reached on
        "https://www.whitelisteddomain.tld:/",
        "https://user@www.whitelisteddomain.tld/",
        "https://www.whitelisteddomain.tld//evil.example",
        "https://www.whitelisteddomain.tld/\\evil",
        "https://www.whitelisteddomain.tld/ space",
        "https://apps.example.com/",  # the wildcard's parent is not covered
        "https://127.0.0.1/",
        "ftp://www.whitelisteddomain.tld/",
        "https:www.whitelisteddomain.tld/",
        "/local",
        "",
    ],
)
def test_lookalikes_are_refused(candidate: str) -> None:
    assert safe_target(candidate, POLICY, PORTS, False) is None


def test_an_https_portal_sends_nobody_to_plain_http() -> None:
    assert safe_target("http://www.whitelisteddomain.tld/", POLICY, PORTS, True) is None
    assert safe_target("https://www.whitelisteddomain.tld/", POLICY, PORTS, True) is not None


def test_local_paths() -> None:
    assert safe_local_path("/a?b=c") == "/a?b=c"
    for bad in ("//evil", "/\\evil", "evil", "/a b", ""):
        assert safe_local_path(bad) is None
