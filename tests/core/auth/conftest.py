"""What the sign-in tests share: a node's signing keys in a fresh directory."""

from pathlib import Path

import pytest

from core.auth.signing import KeyRing


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    return ring
