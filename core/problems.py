"""What is wrong with a file people edit, said with the file, the key's path and the reason."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

type Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str
    file: Path | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<input>"
        if self.line is not None:
            where += f":{self.line}"
        key = dotted(self.loc)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def from_validation_error(error: ValidationError) -> list[Problem]:
    return [
        Problem(_clean_loc(detail["loc"]), _message(detail["msg"], detail["type"]))
        for detail in error.errors(include_url=False)
    ]


def _clean_loc(loc: Iterable[str | int]) -> Loc:
    # pydantic names union members and validator wrappers in locations; people never wrote those.
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        if isinstance(part, str) and part[:1].isupper():
            continue  # a model class name from a union, e.g. ResourceAuth
        cleaned.append(part)
    return tuple(cleaned)


def _message(message: str, kind: str) -> str:
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; every key is documented in docs/configuration.md)"
    return message.removeprefix("Value error, ")
