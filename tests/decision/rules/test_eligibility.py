"""An offer's ``eligibility:`` (decision/rules/eligibility.py): one rule or named rules, audiences, schedule."""

from __future__ import annotations

import pytest

from decision.rules.loader import parse
from decision.rules.types import AudienceRule, EligibilityRule, Schedule, utc_iso

HEAD = "placements: [{id: p, channels: [web], fallback: fb}]\noffers:\n  - {id: fb, placements: [p]}\n"


def rules(eligibility: str | None) -> tuple[tuple[EligibilityRule, ...], list[str]]:
    offer = (
        "{id: x, placements: [p]}" if eligibility is None else f"{{id: x, placements: [p], eligibility: {eligibility}}}"
    )
    document = HEAD + f"  - {offer}\n"
    ruleset, problems = parse(document.encode(), "e.yaml")
    return (() if ruleset is None else ruleset.offers["x"].rules), [str(p) for p in problems]


def test_without_eligibility_an_offer_is_always_eligible_under_its_own_name() -> None:
    [rule], _ = rules(None)
    assert (rule.name, rule.audiences, rule.condition, rule.schedule) == ("x", AudienceRule(), None, Schedule())


def test_one_rule_is_named_after_the_offer_and_a_list_names_its_own() -> None:
    [one], _ = rules("{audiences: {all: [vip], any: [a, b], none: [churned]}}")
    assert one.name == "x" and one.audiences == AudienceRule(("vip",), ("a", "b"), ("churned",))
    named, _ = rules("[{name: members, audiences: {all: [m]}}, {name: spenders, conditions: {context.c: {gt: 1}}}]")
    assert [r.name for r in named] == ["members", "spenders"]


def test_a_schedule_in_any_time_zone_is_kept_in_epoch_seconds() -> None:
    [rule], problems = rules('{schedule: {start: "2026-11-27T00:00:00+01:00", end: "2026-12-01T00:00:00Z"}}')
    assert problems == []
    assert rule.schedule.start is not None and rule.schedule.end is not None
    assert (utc_iso(rule.schedule.start), utc_iso(rule.schedule.end)) == (
        "2026-11-26T23:00:00Z",
        "2026-12-01T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("eligibility", "expected"),
    [
        ("[{audiences: {all: [a]}}]", "e.yaml:4: offers[x].eligibility[0].name: required field is missing"),
        ("[{name: r, audiences: {all: [a]}}, {name: r}]", "offers[x].eligibility[1].name: duplicate rule name 'r'"),
        ("{audiences: {all: [a], none: [a]}}", "audiences.none: audience 'a' is both required and excluded"),
        ("{audiences: {some: [a]}}", "eligibility.audiences.some: unknown field"),
        ("{audiences: {all: [a, a]}}", "eligibility.audiences.all"),
        ("{audiences: {all: ['a b']}}", "eligibility.audiences.all"),
        ("{schedule: {}}", "eligibility.schedule: needs a start, an end, or both"),
        ('{schedule: {start: "2026-12-01T00:00:00Z", end: "2026-11-01T00:00:00Z"}}', "end is not after start"),
        ("{schedule: {start: 2026-01-01}}", "schedule.start: timestamp '2026-01-01' needs a time zone"),
        ("{name: bad name}", "eligibility.name"),
    ],
)  # fmt: skip
def test_mistakes_are_located(eligibility: str, expected: str) -> None:
    _, problems = rules(eligibility)
    assert any(expected in p for p in problems), problems
