import pytest

from core.hosts import HostTable, normalise_host, valid_authority


@pytest.mark.parametrize(
    ("authority", "host"),
    [("App.Example.COM", "app.example.com"), ("app.example.com.", "app.example.com"),
     ("app.example.com:8443", "app.example.com"), ("app.example.com.:443", "app.example.com"),
     ("[2001:DB8::1]:443", "[2001:db8::1]"), ("127.0.0.1:80", "127.0.0.1")],
)  # fmt: skip
def test_normalise(authority: str, host: str) -> None:
    assert normalise_host(authority) == host


def test_exact_before_wildcard_and_most_specific_wildcard_first() -> None:
    table = HostTable(
        [("*.example.com", "wild"), ("*.apps.example.com", "apps"), ("git.apps.example.com", "git")]
    )
    assert table.lookup("git.apps.example.com") == "git"
    assert table.lookup("wiki.apps.example.com") == "apps"
    assert table.lookup("a.b.apps.example.com") == "apps"
    assert table.lookup("www.example.com") == "wild"
    assert table.lookup("example.com") is None
    assert table.lookup("example.org") is None
    assert table.lookup("GIT.APPS.EXAMPLE.COM.:443") == "git"


@pytest.mark.parametrize(
    "authority",
    [
        "pub.test",
        "App.Example.",
        "pub.test:8080",
        "[::1]:443",
        "127.0.0.1",
        "xn--bcher-kva.example",
    ],
)
def test_valid_authorities(authority: str) -> None:
    assert valid_authority(authority)


@pytest.mark.parametrize(
    "authority",
    ["pub.test:x@evil.test", "pub.test:80@evil.test", "pub.test:abc", "pub.test:", ":80",
     "pub.test:0", "pub.test:99999", "pub.test:80:80", "a b", "[::1]x", "", "user@pub.test",
     "pub.test/x", "pub.test\\x"],
)  # fmt: skip
def test_invalid_authorities(authority: str) -> None:
    assert not valid_authority(authority)
