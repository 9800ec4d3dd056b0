"""Token attacks, each refused by `core.auth.tokens.verify`."""

import base64
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.auth.signing import KeyRing
from core.auth.tokens import TokenError, mint, new_id, verify

ISSUER = "https://auth.example.com"
HOST_A = "a.example.com"
HOST_B = "b.example.com"


def session(keys: KeyRing, **overrides: object) -> str:
    return mint(
        keys,
        use="session",
        issuer=str(overrides.pop("issuer", ISSUER)),
        audience=str(overrides.pop("audience", HOST_A)),
        subject="alice",
        lifetime=float(overrides.pop("lifetime", 3600)),  # type: ignore[arg-type]
        claims={"sid": "s1", **overrides},
        now=overrides.pop("now", None),  # type: ignore[arg-type]
    )


def check(keys: KeyRing, token: str, audience: str = HOST_A) -> dict[str, object]:
    return verify(keys, token, use="session", issuer=ISSUER, audience=audience)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return decoded


def parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, signature = token.split(".")
    return unb64(header), unb64(payload), signature


def test_a_good_token_verifies_and_names_its_key(keys: KeyRing) -> None:
    token = session(keys)
    header, _payload, _ = parts(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == keys.kids()[-1]
    claims = check(keys, token)
    assert claims["sub"] == "alice"
    assert claims["aud"] == HOST_A


def test_alg_none_is_refused(keys: KeyRing) -> None:
    _header, payload, _ = parts(session(keys))
    forged = f"{b64(json.dumps({'alg': 'none', 'kid': keys.kids()[-1]}).encode())}.{b64(json.dumps(payload).encode())}."
    with pytest.raises(TokenError):
        check(keys, forged)


def test_hs256_signed_with_the_public_key_is_refused(keys: KeyRing) -> None:
    public = keys.signing_key().public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _header, payload, _ = parts(session(keys))
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': keys.kids()[-1], 'typ': 'JWT'}).encode())}."
        f"{b64(json.dumps(payload).encode())}"
    )
    signature = hmac.new(public, signing_input.encode(), "sha256").digest()
    with pytest.raises(TokenError):
        check(keys, f"{signing_input}.{b64(signature)}")


def test_expired_is_refused(keys: KeyRing) -> None:
    with pytest.raises(TokenError, match="expired"):
        check(keys, session(keys, now=time.time() - 7200))


def test_not_yet_valid_is_refused(keys: KeyRing) -> None:
    with pytest.raises(TokenError):
        check(keys, session(keys, now=time.time() + 3600))
    with pytest.raises(TokenError):
        check(keys, session(keys, nbf=int(time.time()) + 3600))


def test_a_session_for_one_host_is_refused_on_another(keys: KeyRing) -> None:
    with pytest.raises(TokenError, match="udience"):
        check(keys, session(keys, audience=HOST_A), audience=HOST_B)


def test_wrong_issuer_is_refused(keys: KeyRing) -> None:
    with pytest.raises(TokenError, match="ssuer"):
        check(keys, session(keys, issuer="https://evil.example.com"))


def test_unknown_kid_is_refused(keys: KeyRing) -> None:
    stranger = Ed25519PrivateKey.generate()
    _header, payload, _ = parts(session(keys))
    forged = jwt.encode(payload, stranger, algorithm="EdDSA", headers={"kid": "nobody"})
    with pytest.raises(TokenError, match="unknown signing key"):
        check(keys, forged)
    # A stranger's key under a kid we know is a bad signature.
    forged = jwt.encode(payload, stranger, algorithm="EdDSA", headers={"kid": keys.kids()[-1]})
    with pytest.raises(TokenError):
        check(keys, forged)


def test_tampered_payload_is_refused(keys: KeyRing) -> None:
    token = session(keys)
    header, _payload, signature = token.split(".")
    claims = parts(token)[1]
    claims["sub"] = "admin"
    with pytest.raises(TokenError):
        check(keys, f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


def test_a_token_for_another_use_is_refused(keys: KeyRing) -> None:
    assertion = mint(
        keys, use="assertion", issuer=ISSUER, audience=HOST_A, subject="alice", lifetime=60
    )
    with pytest.raises(TokenError, match="'assertion' token"):
        check(keys, assertion)


def test_required_claims_are_required(keys: KeyRing) -> None:
    key = keys.signing_key()
    now = int(time.time())
    full = {"iss": ISSUER, "aud": HOST_A, "sub": "alice", "use": "session", "iat": now,
            "exp": now + 60}  # fmt: skip
    for missing in ("exp", "iat", "iss", "aud", "sub"):
        claims = {k: v for k, v in full.items() if k != missing}
        token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        with pytest.raises(TokenError):
            check(keys, token)


def test_garbage_is_refused(keys: KeyRing) -> None:
    for junk in ("", "x", "a.b.c", "." * 3, "e30.e30.", "x" * 10000):
        with pytest.raises(TokenError):
            check(keys, junk)


def test_an_id_never_reads_as_a_command_line_option() -> None:
    # 4000 draws: with one in 64 beginning with "-", a generator that allowed it fails here
    # all but once in 10**27 runs.
    ids = {new_id() for _ in range(4000)}
    assert len(ids) == 4000
    assert not [i for i in ids if i.startswith("-")]
