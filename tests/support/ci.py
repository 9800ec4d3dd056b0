"""What changes when the tests run in CI: a missing tool fails instead of skipping, and what a
test leaves for people to look at goes to one folder."""

import os
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "artifacts"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
