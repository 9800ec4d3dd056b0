"""YAML as admins write it: duplicate keys are an error, and problems point at a line."""

from pathlib import Path
from typing import Any

import yaml

from core.problems import ConfigError, Loc, Problem

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Loader):  # type: ignore[valid-type, misc]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def load_yaml(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([Problem((), f"cannot read: {error.strerror or error}", path)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem((), "is not UTF-8 text", path)]) from None
    return text, parse_yaml(text, path)


def parse_yaml(text: str, path: Path | None = None) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        reason = " ".join(filter(None, [error.context, error.problem]))
        raise ConfigError([Problem((), f"not valid YAML: {reason}", path, line)]) from None
    except yaml.YAMLError as error:
        raise ConfigError([Problem((), f"not valid YAML: {error}", path)]) from None


def locate(text: str, problems: list[Problem], path: Path | None) -> list[Problem]:
    """Attach file and line numbers to problems found after parsing (the error path only)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    return [Problem(p.loc, p.message, path, _line_of(root, p.loc)) for p in problems]


def _line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        best = node.start_mark.line + 1
    return best
