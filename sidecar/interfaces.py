"""The site agent's WireGuard interface names, one per node, remembered across restarts.

The first node gets `--interface` itself (so a single-node site is exactly what it always was);
the others get it with a short number (`wrn-home-1`, `wrn-home-2`), cut to Linux's 15
characters. Names are kept in `<state_dir>/<site>.interfaces.json`, so a restarted agent adopts
the interfaces a previous run left rather than making new ones beside them.
"""

import json
import logging
from pathlib import Path

from core.files import write_atomically

log = logging.getLogger("warren.site")

IFNAMSIZ = 15  # Linux's longest interface name, without the terminating NUL


def numbered(base: str, number: int) -> str:
    if number == 0:
        return base
    suffix = f"-{number}"
    return base[: IFNAMSIZ - len(suffix)] + suffix


class InterfaceNames:
    def __init__(self, path: Path, base: str) -> None:
        self.path = path
        self.base = base
        self._names: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as error:  # names only: losing them costs an interface made anew
            log.warning("%s is unreadable (%s); naming interfaces afresh", self.path, error)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def name_for(self, node: str) -> str:
        """The interface for `node` (a node's name, or its URL when it gives none)."""
        if node in self._names:
            return self._names[node]
        taken = set(self._names.values())
        number = 0
        while numbered(self.base, number) in taken:
            number += 1
        self._names[node] = numbered(self.base, number)
        self._save()
        return self._names[node]

    def forget(self, node: str) -> None:
        """The node's link is gone with its interface: its name may serve another node."""
        if self._names.pop(node, None) is not None:
            self._save()

    def _save(self) -> None:
        data = json.dumps(self._names, indent=2, sort_keys=True).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(self.path, data)
