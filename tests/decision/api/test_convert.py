"""Protobuf <-> domain (decision/api/convert.py), pure: the wire's enums mirror the domain's, values keep their type."""

from __future__ import annotations

from google.protobuf import json_format

from decision.api.convert import decide_response, record_events_response
from decision.core.types import Decision, Explanation, Outcome
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
