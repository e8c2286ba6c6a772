"""Validation problems, reported as ``file:line: field: reason``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from decision.rules.types import Location


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    location: Location
    field: str
    reason: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.location}: {prefix}{self.field}: {self.reason}"


class RulesetInvalid(Exception):
    """A ruleset has errors; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
