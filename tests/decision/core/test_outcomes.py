"""Outcome counters' fields and proposal tallies (decision/core/outcomes.py), pure. In Redis:
tests/decision/service/test_outcomes.py."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.outcomes import (
    DayClock,
    OutcomeRow,
    ProposalTally,
    event_digest,
    outcome_field,
    outcome_field_parts,
    rows_of,
)
from decision.core.types import Decision, Item, Proposition

# Ids of the rule language never hold the separator; ``custom:<type>`` may hold anything but it.
IDS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,12}", fullmatch=True)


@given(
    IDS,
    IDS,
    st.one_of(st.just(""), IDS),
    st.one_of(st.just(""), IDS),
    st.sampled_from(["decision", "click", "custom:a.b"]),
)
def test_a_field_reads_back_as_written(
    version: str, placement: str, experiment: str, variant: str, counted: str
) -> None:
    name = outcome_field(version, placement, experiment, variant, counted)
    assert (
        outcome_field_parts(name)
        == outcome_field_parts(name.encode())
        == (version, placement, experiment, variant, counted)
    )


def test_rows_of_a_hash_skip_fields_of_another_shape() -> None:
    raw = {outcome_field("v1", "banner", "e", "a", "click").encode(): b"3", b"legacy": b"9"}
    assert list(rows_of("x", "2026-06-01", raw)) == [
        OutcomeRow("2026-06-01", "x", "v1", "banner", "e", "a", "click", 3)
    ]


def test_the_day_turns_at_midnight_in_its_time_zone() -> None:
    clock = DayClock("Europe/Paris")
    day, end = clock.day(1_780_000_000_000)  # 22:26:40 in Paris
    assert (day, end) == ("2026-05-28", 1_780_005_600_000)  # until midnight in Paris, 22:00 UTC
    assert clock.day(end - 1) == (day, end)
    assert clock.day(end)[0] == "2026-05-29"


def test_an_events_digest_is_stable() -> None:
    assert event_digest("p1", "e1") == event_digest("p1", "e1") != event_digest("p1", "e2")
    assert len(event_digest("p1", "e1")) == 16


def _decision(offers: list[tuple[str, str]]) -> Decision:
    items = tuple(Item(o, "{}", "r", 0, 0.0, "t", experiment_id="e" if v else "", variant=v) for o, v in offers)
    return Decision((Proposition("banner", items, False),), "v1", False, "r", "d")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["", "x", "y"])), max_size=3), max_size=20),
       st.lists(st.booleans(), max_size=20))  # fmt: skip
def test_a_tally_given_back_loses_nothing(decisions: list[list[tuple[str, str]]], fails: list[bool]) -> None:
    # Whatever flushes fail (given back) or succeed (added), every proposal is counted exactly once.
    tally, added = ProposalTally(), Counter[tuple[str, str]]()
    for n, offers in enumerate(decisions):
        tally.add(_decision(offers), "UTC", 1_780_000_000_000 + n)
        counts, ends = tally.take()
        if n < len(fails) and fails[n]:
            tally.give_back(counts, ends)
        else:
            for (offer, _), fields in counts.items():
                added[(offer, "")] += sum(fields.values())
    for (offer, _), fields in tally.take()[0].items():
        added[(offer, "")] += sum(fields.values())
    assert added == Counter((o, "") for offers in decisions for o, _ in offers)
