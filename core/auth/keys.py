"""Signing keys: Ed25519, one PEM file per key in `state_dir/keys`, the newest one signs.

`warren keys rotate` adds a key; the older ones keep verifying until every token they signed
has expired, then rotation prunes them. Processes notice a new key by re-reading the directory
when its modification time changes (checked at most once a second), so the portal starts
signing with a new key, and gateways accept it, without a restart.
"""

import itertools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
_SUFFIX = ".pem"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    created: float
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def _new_kid(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(4)


def _age_order(key: SigningKey) -> tuple[float, str]:
    return key.created, key.kid


class KeyRing:
    def __init__(self, directory: Path, recheck_seconds: float = 1.0) -> None:
        self.directory = directory
        self._recheck = recheck_seconds
        self._keys: dict[str, SigningKey] = {}
        self._signature: tuple[int, int] | None = None
        self._checked = 0.0

    def ensure(self) -> None:
        """Make the first key if there is none: a fresh node can sign at once."""
        self.refresh(force=True)
        if not self._keys:
            self.add()

    def add(self, now: float | None = None) -> SigningKey:
        now = time.time() if now is None else now
        key = SigningKey(_new_kid(now), now, Ed25519PrivateKey.generate())
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = self.directory / f".{key.kid}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.utime(temporary, (now, now))
        temporary.rename(self.directory / f"{key.kid}{_SUFFIX}")
        self.refresh(force=True)
        return key

    def rotate(self, keep_for: float, now: float | None = None) -> tuple[SigningKey, list[str]]:
        """A new signing key; keys retired longer than `keep_for` seconds ago are deleted."""
        now = time.time() if now is None else now
        self.refresh(force=True)
        new = self.add(now)
        ordered = sorted(self._keys.values(), key=_age_order)
        pruned = []
        for older, successor in itertools.pairwise(ordered):
            if successor.created + keep_for < now:
                (self.directory / f"{older.kid}{_SUFFIX}").unlink(missing_ok=True)
                pruned.append(older.kid)
        self.refresh(force=True)
        return new, pruned

    def refresh(self, force: bool = False, now_please: bool = False) -> None:
        """Re-read the directory if it changed; look at most once a second unless asked."""
        now = time.monotonic()
        if not (force or now_please) and now - self._checked < self._recheck:
            return
        self._checked = now
        try:
            stat = self.directory.stat()
        except FileNotFoundError:
            self._keys, self._signature = {}, None
            return
        signature = (stat.st_mtime_ns, stat.st_ino)
        if signature == self._signature and not force:
            return
        self._keys = {key.kid: key for key in _read_keys(self.directory)}
        self._signature = signature

    def signing_key(self) -> SigningKey:
        self.refresh()
        if not self._keys:
            raise LookupError(f"no signing key in {self.directory}; run `warren keys rotate`")
        return max(self._keys.values(), key=_age_order)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None:
            # A key added since we last looked (rotation by another process). Costs a stat; the
            # directory is only read again if it changed.
            self.refresh(now_please=True)
            key = self._keys.get(kid)
        return key.public if key is not None else None

    def kids(self) -> list[str]:
        """Oldest first."""
        self.refresh()
        return [key.kid for key in sorted(self._keys.values(), key=_age_order)]

    def jwks(self) -> dict[str, Any]:
        self.refresh()
        keys = []
        for kid in reversed(self.kids()):
            jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self._keys[kid].public, as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}


def _read_keys(directory: Path) -> list[SigningKey]:
    found = []
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            created = path.stat().st_mtime
        except (OSError, ValueError):
            continue  # a half-written or foreign file: never a reason to stop verifying
        if isinstance(private, Ed25519PrivateKey):
            found.append(SigningKey(path.name.removesuffix(_SUFFIX), created, private))
    return found
