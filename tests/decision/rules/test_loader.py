"""`decision validate`: every problem as file:line: field: reason, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from decision.cli.main import main
from decision.rules.loader import parse

BAD = """\
version: bad-1
attributes: {cart_value: number}
placements:
  - {id: home, channels: [web], fallback: missing_offer}
  - {id: home, channels: [web], fallback: a}
  - {id: side, channels: [web]}
offers:
  - id: a
    placements: [home, nowhere]
    colour: red
    eligibility:
      conditions:
        - context.cart_value: {greater: 3}
        - context.cart_value: {eq: "ten"}
      schedule: {start: "2026-12-01T00:00:00+00:00", end: "2026-11-01T00:00:00+00:00"}
  - id: a
    placements: [home]
"""

EXPECTED = [
    ":4: placements[home].fallback: fallback offer 'missing_offer' does not exist",
    ":5: placements[home].id: duplicate placement id 'home'",
    ":6: placements[2].fallback: required field is missing",
    ":9: offers[a].placements[1]: unknown placement 'nowhere'",
    ":10: offers[0].colour: unknown field",
    ":13: offers[a].eligibility.conditions[0].context.cart_value.greater: unknown operator 'greater'",
    ":14: offers[a].eligibility.conditions[1].context.cart_value.eq: type mismatch",
    ":15: offers[a].eligibility.schedule.end: end is not after start",
    ":16: offers[a].id: duplicate offer id 'a'",
]


def test_validate_prints_every_problem_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXPECTED)
    for line, expected in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"{path}{expected}"), line


def test_validate_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "retail" / "rules.yaml"
    assert main(["validate", str(example)]) == 0
    assert "ok, version retail-2026.11, 3 placements, 15 offers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("placements: [\n", "x.yaml:2: file: invalid YAML"),
        ("- just a list\n", "x.yaml:1: (document): must be a mapping, got a list"),
        ("placements: []\noffers: []\n", "x.yaml:1: placements: must not be empty"),
        (
            "placements: [{id: p, channels: [web], fallback: f}]\n"
            "offers:\n  - {id: f, placements: [p], eligibility: {schedule: {start: 2026-01-01}}}\n",
            "x.yaml:3: offers[f].eligibility.schedule.start: timestamp '2026-01-01' needs a time zone",
        ),
        (
            "placements: [{id: p, channels: [web], fallback: f}]\n"
            "offers:\n  - {id: f, placements: [p], eligibility: {audiences: {some: [a]}}}\n",
            "x.yaml:3: offers[f].eligibility.audiences.some: unknown field",
        ),
    ],
)
def test_each_problem_names_file_line_and_field(text: str, expected: str) -> None:
    ruleset, problems = parse(text.encode(), "x.yaml")
    assert ruleset is None
    assert any(str(p).startswith(expected) for p in problems), [str(p) for p in problems]


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml:0: file: cannot read" in capsys.readouterr().out


def test_serve_refuses_an_invalid_ruleset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    assert main(["serve", "--rules", str(path), "--redis-url", "redis://127.0.0.1:1"]) == 1
    assert "refusing to start" in capsys.readouterr().err


IMPOSSIBLE_DATES = """\
placements:
  - {id: home, channels: [web], fallback: a}
offers:
  - id: a
    placements: [home]
    priority: 2026-13-45
  - id: b
    placements: [home]
    content: {starts: 2026-02-30}
    eligibility:
      conditions:
        - context.day: {eq: 2026-13-01}
"""


def test_an_impossible_date_is_a_located_problem_not_a_crash() -> None:
    # YAML reads an unquoted 2026-13-45 as a timestamp; PyYAML's constructor raises ValueError on it.
    ruleset, problems = parse(IMPOSSIBLE_DATES.encode(), "dates.yaml")
    assert ruleset is None
    found = [(p.location.line, p.field, p.reason) for p in problems]
    assert found == [
        (6, "offers[a].priority", "must be an integer, got Unconstructible <invalid date: month must be in 1..12>"),
        (9, "offers[b].content", "cannot be represented as JSON: Type is not JSON serializable: Unconstructible"),
        (
            12,
            "offers[b].eligibility.conditions[0].context.day.eq",
            "type mismatch: expected a string, number or boolean, got Unconstructible "
            "<invalid date: month must be in 1..12>",
        ),
    ]
