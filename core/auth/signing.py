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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from core.files import replacing

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


class PublishedKeySource(Protocol):
    """Other nodes' public keys (core.cluster.keys), trusted beside the ring's own."""

    @property
    def generation(self) -> int:
        """Moves whenever a key stops being trusted."""
        ...

    def public_key(self, kid: str) -> Ed25519PublicKey | None: ...

    def jwks_entries(self) -> list[dict[str, Any]]: ...

    async def look_again(self) -> bool:
        """Read the published keys again now, if allowed; True when it did."""
        ...


def jwk_of(kid: str, public: Ed25519PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


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
        self.published: PublishedKeySource | None = None  # with shared storage: the other nodes'

    @property
    def generation(self) -> int:
        return 0 if self.published is None else self.published.generation

    def ensure(self) -> None:
        """Make the first key if there is none: a fresh node can sign at once."""
        self.refresh(force=True)
        if not self._keys:
            self.add()

    def add(
        self, now: float | None = None, before_use: Callable[[SigningKey], None] | None = None
    ) -> SigningKey:
        """`before_use` sees the key before any process can sign with it (other nodes must know
        its public half first: core.cluster.keys)."""
        now = time.time() if now is None else now
        key = SigningKey(_new_kid(now), now, Ed25519PrivateKey.generate())
        if before_use is not None:
            before_use(key)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with replacing(self.directory / f"{key.kid}{_SUFFIX}", exclusive=True) as temporary:
            temporary.write_bytes(pem)
            os.utime(temporary, (now, now))  # the file's time is the key's age
        self.refresh(force=True)
        return key

    def rotate(
        self,
        keep_for: float,
        now: float | None = None,
        before_use: Callable[[SigningKey], None] | None = None,
    ) -> tuple[SigningKey, list[str]]:
        """A new signing key; keys retired longer than `keep_for` seconds ago are deleted."""
        now = time.time() if now is None else now
        self.refresh(force=True)
        new = self.add(now, before_use)
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
        if key is None and self.published is not None:
            published = self.published.public_key(kid)
            if published is not None:
                return published
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

    def own_jwks(self) -> dict[str, Any]:
        """This node's public keys, newest first: what it publishes."""
        self.refresh()
        return {"keys": [jwk_of(kid, self._keys[kid].public) for kid in reversed(self.kids())]}

    def jwks(self) -> dict[str, Any]:
        """Every key a token may verify with: this node's, then the other nodes' published."""
        keys = self.own_jwks()["keys"]
        if self.published is not None:
            keys += [e for e in self.published.jwks_entries() if e["kid"] not in self._keys]
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
