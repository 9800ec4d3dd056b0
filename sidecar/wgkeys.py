"""WireGuard keys: Curve25519, written base64 (as `wg` shows them), sent hex over the UAPI."""

import base64
import binascii
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.files import write_atomically

KEY_BYTES = 32


class BadKey(ValueError):
    """Not a WireGuard key: 32 bytes, base64."""


def generate_private_key() -> str:
    # Clamped as `wg genkey` does, so the stored key reads the same in every tool.
    raw = bytearray(secrets.token_bytes(KEY_BYTES))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def public_key(private_key: str) -> str:
    raw = X25519PrivateKey.from_private_bytes(key_bytes(private_key)).public_key()
    return base64.b64encode(raw.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_bytes(key: str) -> bytes:
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("not base64") from None
    if len(raw) != KEY_BYTES:
        raise BadKey(f"a WireGuard key is {KEY_BYTES} bytes, this one {len(raw)}")
    return raw


def is_key(key: str) -> bool:
    try:
        key_bytes(key)
    except BadKey:
        return False
    return True


def to_hex(key: str) -> str:
    return key_bytes(key).hex()


def from_hex(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text)).decode()


def load_or_create(path: Path) -> str:
    """The private key kept in `path` (mode 0600), made on first use. Never logged."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = generate_private_key()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(path, key.encode() + b"\n", exclusive=True)  # all or nothing
        return key
    key_bytes(key)  # a damaged key file is an error to fix, not a reason to make a new identity
    return key
