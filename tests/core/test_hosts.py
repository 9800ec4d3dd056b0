import pytest

from core.hosts import HostTable, normalise_host


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
