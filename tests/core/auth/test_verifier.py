"""`core.auth.verifier`: what it remembers of a token, and for whom."""

import pytest

from core.auth.signing import KeyRing
from core.auth.tokens import TokenError, mint
from core.auth.verifier import Verifier

ISSUER = "https://auth.example.com"


def session(keys: KeyRing, audience: str) -> str:
    return mint(
        keys,
        use="session",
        issuer=ISSUER,
        audience=audience,
        subject="alice",
        lifetime=3600,
        claims={"sid": "s1"},
    )


def test_a_token_shown_first_to_another_host_still_opens_its_own(keys: KeyRing) -> None:
    verifier = Verifier(keys, ISSUER)
    token = session(keys, "a.example.com")
    with pytest.raises(TokenError):
        verifier.check(token, "session", "b.example.com")
    assert verifier.check(token, "session", "a.example.com").identity.subject == "alice"
    with pytest.raises(TokenError):  # and the other host, once it was good, still refuses it
        verifier.check(token, "session", "b.example.com")


def test_a_token_for_a_fixed_audience_is_refused_for_another(keys: KeyRing) -> None:
    verifier = Verifier(keys, ISSUER)
    token = mint(
        keys, use="share", issuer=ISSUER, audience="share:photos", subject="share:x",
        lifetime=60, claims={"jti": "x"},
    )  # fmt: skip
    with pytest.raises(TokenError):
        verifier.check(token, "share", "", audience="share:grafana")
    assert verifier.check(token, "share", "", audience="share:photos").identity.method == "share"


def test_a_made_up_token_too_long_to_be_warrens_is_refused_and_not_kept(keys: KeyRing) -> None:
    verifier = Verifier(keys, ISSUER)
    huge = "eyJ" + "A" * 60_000
    for _ in range(2):
        with pytest.raises(TokenError):
            verifier.check(huge, "session", "a.example.com")
    assert verifier.check(session(keys, "a.example.com"), "session", "a.example.com")
    assert not [key for key in verifier._bad if key[1] == huge]
