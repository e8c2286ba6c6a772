"""Protobuf <-> domain (decision/api/convert.py), pure: the wire's enums mirror the domain's, values keep their type;
Decide's answer written as wire bytes is the DecideResponse message, byte for byte."""

from __future__ import annotations

from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

from decision.api.convert import decide_response, decide_response_bytes, record_events_response
from decision.core.types import Decision, Explanation, Item, Outcome, Proposition
from decision.service.events import EventOutcome, EventResult
from decision.v1 import decision_pb2


def test_every_verdict_outcome_has_a_wire_value() -> None:
    wire = {
        name
        for name in decision_pb2.ExplanationOutcome.DESCRIPTOR.values_by_name
        if name != "EXPLANATION_OUTCOME_UNSPECIFIED"
    }
    assert wire == {f"EXPLANATION_OUTCOME_{outcome.name}" for outcome in Outcome}


def test_every_event_outcome_has_a_wire_value() -> None:
    results = [EventResult(f"e{n}", outcome, "why" if outcome is EventOutcome.REJECTED else "") for n, outcome in
               enumerate(EventOutcome)]  # fmt: skip
    sent = record_events_response(results).results
    assert [decision_pb2.EventOutcome.Name(r.outcome) for r in sent] == [
        f"EVENT_OUTCOME_{outcome.name}" for outcome in EventOutcome
    ]
    assert [r.reason for r in sent] == [r.reason for r in results]


def test_an_explanation_keeps_its_fields_and_the_type_of_its_value() -> None:
    explanations = (
        Explanation("o", "p", Outcome.CONDITION_FALSE, "condition ...", "r", condition="context.n > 1",
                    attribute="n", actual=1.0),
        Explanation("o", "p", Outcome.CONDITION_FALSE, "...", attribute="tags", actual=("a", "b")),
        Explanation("o", "p", Outcome.CONDITION_FALSE, "...", attribute="ok", actual=True),
        Explanation("o", "p", Outcome.CAPPED, "capped", limit=2, count=3, experiment_id="e", beaten_by="x"),
        Explanation("o", "p", Outcome.NOT_IN_AUDIENCE, "...", audience="vip"),
    )  # fmt: skip
    sent = decide_response(Decision((), "v1", False, "r", "d", explanations)).explanations
    assert sent[0].outcome == decision_pb2.EXPLANATION_OUTCOME_CONDITION_FALSE
    assert (sent[0].condition, sent[0].attribute, sent[0].rule) == ("context.n > 1", "n", "r")
    assert [json_format.MessageToDict(e.actual) for e in sent[:3]] == [1.0, ["a", "b"], True]
    assert not sent[3].HasField("actual")  # absent, not a null
    assert (sent[3].limit, sent[3].count, sent[3].experiment_id, sent[3].beaten_by) == (2, 3, "e", "x")
    assert sent[4].audience == "vip"


texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "home_banner", "é→☃", "x" * 200]))
items = st.builds(
    Item,
    offer_id=texts,
    content_json=st.one_of(texts, st.just('{"title": "Offer 1", "link": "/o/1"}')),
    rule=texts,
    priority=st.integers(-(2**31), 2**31 - 1),
    score=st.one_of(st.just(0.0), st.just(-0.0), st.floats(allow_nan=False), st.just(float("nan"))),
    tracking_token=texts,
    fallback=st.booleans(),
    experiment_id=texts,
    variant=texts,
)
propositions = st.builds(
    Proposition,
    placement_id=texts,
    items=st.lists(items, max_size=4).map(tuple),
    fallback=st.booleans(),
    experiment_id=texts,
    variant=texts,
)
explanations = st.builds(
    Explanation,
    offer_id=texts,
    placement_id=texts,
    outcome=st.sampled_from(Outcome),
    reason=texts,
    rule=texts,
    limit=st.integers(0, 100),
    count=st.integers(0, 100),
    actual=st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), texts),
)
decisions = st.builds(
    Decision,
    propositions=st.lists(propositions, max_size=3).map(tuple),
    ruleset_version=texts,
    degraded=st.booleans(),
    request_id=texts,
    decision_id=texts,
    explanations=st.lists(explanations, max_size=2).map(tuple),
    dry_run=st.booleans(),
)


@given(decision=decisions)
def test_the_answers_bytes_are_the_response_messages(decision: Decision) -> None:
    written = decide_response_bytes(decision)
    built = decide_response(decision)
    assert written == built.SerializeToString()
    assert decision_pb2.DecideResponse.FromString(written) == built or _has_nan(decision)


def _has_nan(decision: Decision) -> bool:  # NaN != NaN: equal bytes, unequal messages
    return any(i.score != i.score for p in decision.propositions for i in p.items)
