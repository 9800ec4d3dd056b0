"""Where the test data from outside the project lives (../shared/testdata/, see its README).

The checkout is normally a sibling of `shared/`; CI may clone it elsewhere, so the folder is
looked for beside every ancestor of the checkout, then at this workplace's /work/shared.
WARREN_TESTDATA names it outright.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
_WORKPLACE = Path("/work/shared/testdata")


def _candidates() -> list[Path]:
    named = os.environ.get("WARREN_TESTDATA")
    found = [Path(named)] if named else []
    found += [parent / "shared" / "testdata" for parent in ROOT.parents]
    return [*found, _WORKPLACE]


def shared_testdata(*parts: str) -> Path:
    """A file or folder of the shared test data; a clear failure (never a skip) when absent."""
    for base in _candidates():
        if (base / "README.md").is_file():
            path = (base / Path(*parts)).resolve()
            if path.exists():
                return path
            pytest.fail(f"missing test data {path} (see {base / 'README.md'})", pytrace=False)
    looked = ", ".join(str(c) for c in _candidates())
    pytest.fail(f"the shared test data is missing; looked in {looked}", pytrace=False)
