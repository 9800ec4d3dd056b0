import stat
from pathlib import Path

import jwt

from core.auth.signing import KeyRing
from core.auth.tokens import mint, verify

ISSUER = "https://auth.example.com"


def test_first_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    ring.ensure()
    (path,) = (tmp_path / "keys").glob("*.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(ring.kids()) == 1


def test_rotation_keeps_old_keys_verifying_until_their_tokens_expired(tmp_path: Path) -> None:
    signer = KeyRing(tmp_path / "keys")
    verifier = KeyRing(tmp_path / "keys")  # another process: notices the new key by itself
    signer.ensure()
    old = mint(signer, use="session", issuer=ISSUER, audience="a", subject="u", lifetime=600)
    new_key, pruned = signer.rotate(keep_for=600)
    assert pruned == []
    new = mint(signer, use="session", issuer=ISSUER, audience="a", subject="u", lifetime=600)
    assert jwt.get_unverified_header(new)["kid"] == new_key.kid
    for token in (old, new):
        assert verify(verifier, token, use="session", issuer=ISSUER, audience="a")["sub"] == "u"
    # Long after the rotation, the next one prunes the key that stopped signing.
    later = new_key.created + 601
    _newest, pruned = signer.rotate(keep_for=600, now=later)
    assert len(pruned) == 1
    assert pruned[0] != new_key.kid
    assert new_key.kid in signer.kids()


def test_jwks_publishes_every_verifying_key(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    ring.rotate(keep_for=600)
    jwks = ring.jwks()
    assert [key["kid"] for key in jwks["keys"]] == ring.kids()[::-1]
    for key in jwks["keys"]:
        assert key["kty"] == "OKP"
        assert key["crv"] == "Ed25519"
        assert "d" not in key  # never the private part
    token = mint(ring, use="assertion", issuer=ISSUER, audience="a", subject="u", lifetime=60)
    public = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    assert jwt.decode(token, public, algorithms=["EdDSA"], audience="a")["sub"] == "u"
