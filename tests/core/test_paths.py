import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ipsets import parse_address
from core.paths import AmbiguousPath, ancestors, canonicalize, compile_pattern
from core.policy.check import Capabilities
from core.policy.load import parse_policy
from core.policy.rules import Facts, Outcome


@pytest.mark.parametrize(
    ("raw", "path", "match"),
    [
        ("/", "/", "/"),
        ("/a/b", "/a/b", "/a/b"),
        ("/a//b///c", "/a/b/c", "/a/b/c"),
        ("/a/./b/../c", "/a/c", "/a/c"),
        ("/a/b/.", "/a/b/", "/a/b/"),
        ("/a/b/..", "/a/", "/a/"),
        ("/a/%2e%2e/b", "/b", "/b"),
        ("/%61dmin", "/admin", "/admin"),
        ("/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9"),
        ("/a b", "/a%20b", "/a%20b"),
        ("/admin;jsessionid=1/x", "/admin;jsessionid=1/x", "/admin/x"),
        ("/x/..;y/admin", None, None),
        ("/%7e~", "/~~", "/~~"),
    ],
)
def test_canonical_form(raw: str, path: str | None, match: str | None) -> None:
    if path is None:
        with pytest.raises(AmbiguousPath):
            canonicalize(raw)
        return
    assert canonicalize(raw) == (path, match)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/a%2fb", "encoded slash"),
        ("/a%2Fb", "encoded slash"),
        ("/a%5cb", "encoded backslash"),
        ("/a\\b", "backslash"),
        ("/a%00", "control character"),
        ("/a\x01b", "control character"),
        ("/a%0d%0a", "control character"),
        ("/a%zz", "invalid percent-encoding"),
        ("/a%4", "invalid percent-encoding"),
        ("/..", "above the root"),
        ("/a/../..", "above the root"),
        ("/%2e%2e/etc", "above the root"),
        ("/a%3bb", "encoded semicolon"),
        ("/%252e%252e/x", "twice"),
        ("/%c0%ae%c0%ae/x", "UTF-8"),
        ("/.;/admin", "dot-segment with parameters"),
        ("/;/admin", "only ;parameters"),
        ("/a/;x/../admin", "only ;parameters"),
        ("admin", "does not start with /"),
        ("*", "does not start with /"),
    ],
)
def test_ambiguous_paths_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(AmbiguousPath, match=reason):
        canonicalize(raw)


def test_literal_percent_that_is_not_an_escape_is_refused() -> None:
    with pytest.raises(AmbiguousPath):
        canonicalize("/100%")


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        (
            "/admin/*",
            ["/admin", "/admin/", "/admin/x", "/admin/x/y"],
            ["/administrator", "/x/admin"],
        ),
        ("/admin/**", ["/admin", "/admin/x/y"], ["/adminx"]),
        ("/admin", ["/admin"], ["/admin/", "/admin/x"]),
        ("/api/*/users", ["/api/v1/users"], ["/api/users", "/api/v1/v2/users"]),
        ("/api/**/users", ["/api/v1/users", "/api/a/b/users"], ["/api/users/x"]),
        ("/files/*.txt", ["/files/a.txt"], ["/files/a/b.txt", "/files/a.txtx"]),
        ("/v?/x", ["/v1/x"], ["/v10/x", "/v/x"]),
        ("/*", ["/", "/anything/below"], []),
        ("/**.php", ["/a.php", "/x/y/z.php"], ["/a.phpx"]),
        ("/caf\u00e9", ["/caf%C3%A9"], ["/cafe"]),
    ],
)
def test_pattern_syntax(pattern: str, yes: list[str], no: list[str]) -> None:
    compiled = compile_pattern(pattern)
    for path in yes:
        assert compiled.matches(path), path
    for path in no:
        assert not compiled.matches(path), path


@pytest.mark.parametrize("pattern", ["admin", "/a/../b", "/a//b", "/a/./b", "/a;b", "/a%2fb"])
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        compile_pattern(pattern)


def test_pattern_keys_are_the_directory_every_match_lies_under() -> None:
    assert compile_pattern("/admin/*").key == "/admin"
    assert compile_pattern("/api/*/users").key == "/api"
    assert compile_pattern("/a/b*").key == "/a"
    assert compile_pattern("/*").key == ""
    assert compile_pattern("/x/y").key == "/x/y"


def test_ancestors() -> None:
    assert ancestors("/") == [""]
    assert ancestors("/a") == ["", "/a"]
    assert ancestors("/a/b/") == ["", "/a", "/a/b"]
    assert ancestors("/a/b/c") == ["", "/a", "/a/b", "/a/b/c"]


# --- The property: no path a backend would read as under /admin gets past a deny on /admin. ---

_ADMIN_DENY = parse_policy(
    """
version: 1
resources:
  app:
    host: app.example
    targets: [{host: 127.0.0.1, port: 1}]
    rules:
      - {action: deny, path: "/admin/*"}
      - {action: allow}
""",
    Capabilities(),
)
_RESOURCE = _ADMIN_DENY.resources["app"]


def _decode_once(path: str) -> str:
    return unquote(path, errors="surrogateescape")


def _resolve(segments: list[str], *, drop_empty: bool) -> list[str]:
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment == "." or (drop_empty and segment == ""):
            continue
        else:
            out.append(segment)
    return out


def lenient_backend(path: str) -> list[str]:
    """Decode, treat backslash as slash, drop ;parameters, merge slashes, resolve dots."""
    decoded = _decode_once(path).replace("\\", "/")
    segments = [segment.partition(";")[0] for segment in decoded.split("/")[1:]]
    return _resolve(segments, drop_empty=True)


def strict_backend(path: str) -> list[str]:
    """RFC 3986: resolve dot-segments on the encoded path, keep empty segments, then decode."""
    segments = _resolve(path.split("/")[1:], drop_empty=False)
    return [_decode_once(segment) for segment in segments]


def double_decoding_backend(path: str) -> list[str]:
    return lenient_backend(_decode_once(path))


BACKENDS = (lenient_backend, strict_backend, double_decoding_backend)

_PIECES = [
    "admin", "ADMIN", "adm%69n", "%61dmin", "%61%64%6d%69%6e", "admin;x=1", "admin;", "x", "y",
    ".", "..", "%2e", "%2E%2e", ".%2e", "..;", ".;x", "", "%2f", "%2F", "%5c", "\\", "%00", "%25",
    "%252e", "%252f", "%3b", ";", "%c0%ae", "%e2%80%a8", "admin%20", "admin%09", "%20admin",
    "%", "%a", "caf\u00e9", "\u212a", "admin/", "/admin", "a%2fadmin", "..%2fadmin", "..\\admin",
]  # fmt: skip


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(_PIECES) | st.text(max_size=4), min_size=1, max_size=7))
    separators = draw(
        st.lists(st.sampled_from(["/", "//", "/./"]), min_size=len(pieces), max_size=len(pieces))
    )
    return "".join(sep + piece for sep, piece in zip(separators, pieces, strict=True))


def _under_admin(segments: list[str]) -> bool:
    return bool(segments) and segments[0] == "admin"


@settings(max_examples=3000, deadline=None)
@given(hostile_paths())
def test_nothing_read_as_admin_gets_past_a_deny_on_admin(raw: str) -> None:
    try:
        canonical = canonicalize(raw)
    except AmbiguousPath:
        return  # refused with 400: nothing is forwarded
    forwarded = canonical.path
    verdict = _ADMIN_DENY.decide(
        _RESOURCE, Facts(parse_address("192.0.2.1"), canonical.match, "GET")
    )
    for backend in BACKENDS:
        if _under_admin(backend(forwarded)):
            assert verdict.outcome is Outcome.DENY, (raw, forwarded, backend.__name__)


@settings(max_examples=1000, deadline=None)
@given(hostile_paths())
def test_canonical_form_is_stable(raw: str) -> None:
    try:
        canonical = canonicalize(raw)
    except AmbiguousPath:
        return
    assert canonicalize(canonical.path) == canonical
    assert re.fullmatch(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*", canonical.path)
