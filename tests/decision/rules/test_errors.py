"""Problems (decision/rules/errors.py): ``file:line: field: reason``, warnings marked, every one listed."""

from __future__ import annotations

from decision.rules.errors import Problem, RulesetInvalid, Severity
from decision.rules.types import Location


def test_a_problem_reads_file_line_field_reason() -> None:
    error = Problem(Location("r.yaml", 7), "offers[x].priority", "must be an integer")
    warning = Problem(Location("r.yaml", 9), "offers[y]", "never selected", Severity.WARNING)
    assert str(error) == "r.yaml:7: offers[x].priority: must be an integer"
    assert str(warning) == "r.yaml:9: warning: offers[y]: never selected"
    invalid = RulesetInvalid([error, warning])
    assert invalid.problems == [error, warning]
    assert str(invalid) == f"{error}\n{warning}"
