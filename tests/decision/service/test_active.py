"""What a PreparedRuleset makes once decides exactly what a decision made from scratch decides.

Prepared once per ruleset and reused by every request: the engine rulesets of the placements asked for,
holding only the rules of the present schedule period (decision.rules.engine), the placements' rank
orders (``PreparedRuleset.ranks``), the signing key's HMAC states and the decision's token parts
(``TokenWriter``), the answer written as bytes (``convert.decide_response_bytes``). From scratch: the
reference evaluation of the rules, ranking per request, each token signed alone, the protobuf messages.
One prepared ruleset serves a whole batch of requests whose clocks go back and forth across schedule
starts and ends, on random counters and known totals.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.api.convert import decide_response, decide_response_bytes
from decision.core.controls import DeliveryControls, Times
from decision.core.planning import build_plan, fill, render
from decision.core.tokens import TokenKey, TokenKeys
from decision.core.totals import TotalsView
from decision.core.types import Decision, DecisionRequest, PlacementRequest
from decision.rules import reference
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.types import Ruleset
from decision.service.active import PreparedRuleset
from tests.decision.core import plans
from tests.decision.rules.strategies import PROFILE_DECLARATIONS, eligibility_rules, requests

KEYS = TokenKeys((TokenKey("k1", b"s" * 32),))


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A ruleset with caps, contact policies, experiments and score formulas (tests/decision/core/plans.py)
    whose offers' eligibility is any the rule language allows: audiences, conditions, schedules."""
    document = yaml.safe_load(draw(plans.documents()))
    document["profile_attributes"] = PROFILE_DECLARATIONS
    for offer in document["offers"]:
        if draw(st.booleans()):
            rules = draw(st.lists(eligibility_rules(), min_size=1, max_size=2))
            offer["eligibility"] = [{"name": f"rule{i}", **rule} for i, rule in enumerate(rules)]
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _shifted(counters: dict[str, tuple[int, ...]], now_ms: int) -> dict[str, Times]:
    """Counters drawn around plans.NOW_MS, moved to ``now_ms``."""
    return {name: tuple(t - plans.NOW_MS + now_ms for t in times) for name, times in counters.items()}


def _signed(decision: Decision, profile_id: str) -> Decision:
    """Each token signed on its own, as a decision's tokens once were."""
    propositions = tuple(
        dataclasses.replace(
            p,
            items=tuple(
                dataclasses.replace(i, tracking_token=KEYS.sign(i.tracking_token, profile_id)) for i in p.items
            ),
        )
        for p in decision.propositions
    )
    return dataclasses.replace(decision, propositions=propositions)


def _loaded(document: str) -> Ruleset:
    ruleset, problems = parse(document.encode(), "random.yaml")
    assert ruleset is not None, "\n".join(map(str, problems))
    return ruleset


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "100")),  # each example decides a batch, twice
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), document=documents(), batch=st.lists(requests(), min_size=1, max_size=6))
def test_prepared_and_from_scratch_decisions_are_equal(
    data: st.DataObject, document: str, batch: list[tuple[frozenset[str], dict[str, Any], float]]
) -> None:
    ruleset = _loaded(document)
    prepared = PreparedRuleset(compile_and_load(ruleset))
    controls = DeliveryControls.build(ruleset)  # built again: the from-scratch side shares nothing
    fields = plans.counter_fields(document)
    totals = TotalsView(counts={(o, "decision", "lifetime"): data.draw(st.integers(0, 3)) for o in ruleset.offers})
    for audiences, context, now in batch:
        audiences = audiences | data.draw(st.sets(st.sampled_from([f"a{i}" for i in range(6)])))
        wanted = data.draw(st.lists(st.sampled_from(plans.PLACEMENTS), min_size=1, max_size=2, unique=True))
        max_items = data.draw(st.integers(0, 3))
        profile = data.draw(st.sampled_from(plans.PROFILES))
        request = DecisionRequest(profile, "web", tuple(PlacementRequest(p, max_items) for p in wanted), context, "r")
        now_ms = int(now * 1000)
        counters = _shifted(data.draw(plans.counters(fields)), now_ms)
        decision_id = data.draw(st.sampled_from(["0123456789abcdef" * 2, "not-hex"]))

        eligible = prepared.compiled.eligible(audiences, context, now, wanted)
        plan = build_plan(ruleset, eligible, request, now_ms=now_ms, controls=prepared.controls, counters=counters,
                          totals=totals, ranks=prepared.ranks)  # fmt: skip
        decision = render(plan, fill(plan, counters), ruleset, request, decision_id=decision_id, keys=KEYS)

        everything = reference.eligible(ruleset, audiences, context, now)
        by_reference = {o: r for o, r in everything.items() if set(ruleset.offers[o].placements) & set(wanted)}
        assert eligible == by_reference, now
        plain = build_plan(ruleset, by_reference, request, now_ms=now_ms, controls=controls, counters=counters,
                           totals=totals)  # fmt: skip
        from_scratch = _signed(render(plain, fill(plain, counters), ruleset, request, decision_id=decision_id), profile)
        assert decision == from_scratch
        assert decide_response_bytes(decision) == decide_response(from_scratch).SerializeToString()
