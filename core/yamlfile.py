"""YAML as admins write it, read fast; duplicate keys are errors; problems point at a line.

yaml-rs (Rust) parses a 100 000-rule policy in a fraction of a second where PyYAML takes
seconds, and reads YAML 1.2, where `NO` is Norway's country code and not `false`. PyYAML is only
used on the error path, to find the line of a key that did not validate.
"""

import re
from pathlib import Path
from typing import Any

import yaml
import yaml_rs

from core.problems import ConfigError, Loc, Problem

_POSITION = re.compile(r"line (\d+)")


def load_yaml(path: Path) -> tuple[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([Problem((), f"cannot read: {error.strerror or error}", path)]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem((), "is not UTF-8 text", path)]) from None
    return text, parse_yaml(text, path)


def parse_yaml(text: str, path: Path | None = None) -> Any:
    if not text.strip():
        return None
    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as error:
        message = str(error)
        position = _POSITION.search(message)
        reason = message.splitlines()[-1].strip() if "\n" in message else message
        line = int(position.group(1)) if position else _line_of_duplicate(text, message)
        raise ConfigError([Problem((), f"not valid YAML: {reason}", path, line)]) from None


def _line_of_duplicate(text: str, message: str) -> int | None:
    found = re.search(r"duplicate mapping key: '(.*)'", message)
    if found is None:
        return None
    key = re.compile(rf"^\s*-?\s*{re.escape(found.group(1))}\s*:", re.MULTILINE)
    lines = [text.count("\n", 0, match.start()) + 1 for match in key.finditer(text)]
    return lines[1] if len(lines) > 1 else None


def locate(text: str, problems: list[Problem], path: Path | None) -> list[Problem]:
    """Attach file and line numbers to problems found after parsing (the error path only)."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
