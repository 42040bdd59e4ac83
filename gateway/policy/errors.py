"""Problems a policy author can act on: where (file, line, column, rule) and what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str
    rule_id: str | None = None
    level: Level = Level.ERROR

    def __str__(self) -> str:
        rule = f" rule {self.rule_id!r}:" if self.rule_id else ""
        return f"{self.file}:{self.line}:{self.column}: {self.level}:{rule} {self.message}"


class PolicyError(Exception):
    """A policy that did not load; nothing of it is active."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
