"""Decide's answer written as wire bytes is the DecideResponse message, byte for byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from decision.api.convert import decide_response, decide_response_bytes
from decision.core.types import Decision, Explanation, Item, Outcome, Proposition
from decision.v1 import decision_pb2

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
)


@given(decision=decisions)
def test_the_answers_bytes_are_the_response_messages(decision: Decision) -> None:
    written = decide_response_bytes(decision)
    built = decide_response(decision)
    assert written == built.SerializeToString()
    assert decision_pb2.DecideResponse.FromString(written) == built or _has_nan(decision)


def _has_nan(decision: Decision) -> bool:  # NaN != NaN: equal bytes, unequal messages
    return any(i.score != i.score for p in decision.propositions for i in p.items)
