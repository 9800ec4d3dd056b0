"""core.policy.coverage against the matcher the gateway uses (core.paths.PathPattern.matches):
every path it offers as one a pattern has beyond others really is, and when it says there is
none, no path tried is one."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.paths import compile_pattern
from core.policy.coverage import matches_beyond, overlap, path_beyond


@pytest.mark.parametrize(
    ("pattern", "others", "beyond"),
    [
        ("/api/**", ["/api/*"], False),  # one subtree, written twice
        ("/api/*", ["/api/v1/*"], True),
        ("/f/*a/raw", ["/f/*/raw"], False),
        ("/f/*/raw", ["/f/*a/raw"], True),
        ("/a/?", ["/a/*"], False),
        ("/a/*", ["/a/?"], True),  # /a itself, /a/bc
        ("/x", ["/x/*"], False),  # a subtree covers its directory
        ("/x/*", ["/x", "/x/**"], False),
        ("/img/*.png", ["/img/**"], False),  # ** crosses segments, * does not
        ("/img/**", ["/img/*.png", "/img/*"], False),
        ("/a/*/c", ["/a/b/*", "/a/*/d"], True),
        ("/a/?", ["/a/b", "/a/c"], True),
    ],
)
def test_what_a_pattern_matches_beyond_others(
    pattern: str, others: list[str], beyond: bool
) -> None:
    compiled = [compile_pattern(other) for other in others]
    assert matches_beyond(compile_pattern(pattern), compiled) is beyond


def test_overlap_is_a_path_in_both() -> None:
    assert overlap(compile_pattern("/a/*/c"), compile_pattern("/a/b/*"))
    assert not overlap(compile_pattern("/a/*.png"), compile_pattern("/a/*.jpg"))
    assert not overlap(compile_pattern("/login"), compile_pattern("/logout"))


SEGMENT = st.text(alphabet="ab.", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
PIECE = st.one_of(SEGMENT, st.sampled_from(["*", "**", "?", "a*", "*b", "?a"]))
PATTERN = st.lists(PIECE, min_size=1, max_size=3).map(lambda pieces: "/" + "/".join(pieces))
PATH = st.lists(st.text(alphabet="ab./x", min_size=0, max_size=4), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


def instance(pattern: str, data: st.DataObject) -> str:
    """A path the pattern matches: its wildcards filled in."""
    fill = {
        "**": st.sampled_from(["", "a", "a/b", "b.a/"]),
        "*": st.sampled_from(["", "a", "ab", "."]),
        "?": st.sampled_from(["a", "b", "."]),
    }
    pieces = re.split(r"(\*\*|\*|\?)", pattern)
    return "".join(data.draw(fill[piece]) if piece in fill else piece for piece in pieces)


@settings(max_examples=300, deadline=None)
@given(PATTERN, st.lists(PATTERN, max_size=3), st.lists(PATH, max_size=20), st.data())
def test_the_path_offered_is_one_and_none_is_missed(
    pattern: str, others: list[str], paths: list[str], data: st.DataObject
) -> None:
    own, rest = compile_pattern(pattern), [compile_pattern(other) for other in others]
    found = path_beyond(own, rest)
    if found is not None:
        assert own.matches(found)
        assert not any(other.matches(found) for other in rest)
        return
    tried = paths + [instance(pattern, data) for _ in range(20)]
    for path in tried:
        if own.matches(path):
            assert any(other.matches(path) for other in rest), path
