"""Load the whole Warren pack into mitmproxy:

mitmdump -s addons/warren.py --set warren_config=warren.yaml
"""

import sys
from pathlib import Path

# A checkout used without installing: make the project's packages importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from addons.pack import warren_addons  # noqa: E402

addons = warren_addons()
