"""The arrows between Warren's modules point one way (docs/architecture.md): no shipped module
reaches itself through its imports, counting the ones inside functions and under TYPE_CHECKING,
which hide a loop without removing it."""

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.test_packaging import ROOT, SHIPPED


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> Iterator[str]:
    """The shipped modules `path` imports anywhere in it; `from a import b` counts `a.b` when
    that is a module, else `a`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_no_module_imports_itself_through_others() -> None:
    paths = {module_name(p): p for package in SHIPPED for p in (ROOT / package).rglob("*.py")}
    modules = set(paths)
    graph = {
        name: {other for other in imported(path, modules) if other in modules and other != name}
        for name, path in paths.items()
    }
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"an import loop: {' -> '.join(error.args[1])}") from None
