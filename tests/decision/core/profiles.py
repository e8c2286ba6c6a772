"""Decisions and events over profiles' counters in memory: the pure core's tests, no Redis, no gRPC.

What Redis keeps for the delivery controls is plain data the pure core reads:
each profile's counters (field -> its latest event times, at most ``keep`` of
them) and the total counts. ``Profiles`` keeps them in dicts and counts as the
scripts do: a decision adds its time to ``plan.fields_of(selection)`` (what
``select.lua`` adds) and to its decision-counted totals (``reserve_total.lua``),
an event to ``controls.event_fields`` (``record_events.lua``; each event here is
a new one, about its own proposal: the dedupe of event ids and tokens is the
store's, tested in tests/decision/service). Eligibility is the reference
evaluator's (held equal to the engine by tests/decision/rules).
The same rules through Redis and gRPC: tests/decision/service/test_reservations.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from decision.core.controls import DeliveryControls, Times
from decision.core.planning import Plan, Selection, Why, build_plan, fill, render
from decision.core.totals import TotalsView, key_of
from decision.core.types import Decision, DecisionRequest, Explanation, PlacementRequest
from decision.rules import reference
from decision.rules.types import Context, Ruleset
from tests.decision.rules.parsed import loaded

HEAD = """
placements:
  - {id: banner, channels: [web, mobile], max_items: 1, fallback: fb}
  - {id: side, channels: [web], max_items: 3, fallback: fb}
offers:
  - {id: fb, placements: [banner, side], priority: -100, eligibility: {audiences: {all: [nobody-is-in-this]}}}
"""


def moment(at: float | str) -> float:
    """Epoch seconds of an ISO 8601 time (with its offset) or of epoch seconds."""
    return at if isinstance(at, float | int) else datetime.fromisoformat(at).timestamp()


@dataclass
class Profiles:
    ruleset: Ruleset
    controls: DeliveryControls
    counters: dict[str, dict[str, Times]] = field(default_factory=dict)
    totals: TotalsView = field(default_factory=TotalsView)
    audiences: dict[str, frozenset[str]] = field(default_factory=dict)
    # The last decision's plan and selection (what a test of planning may look into).
    plan: Plan | None = None
    selection: Selection = ()

    @classmethod
    def of(cls, document: str) -> Profiles:
        ruleset = loaded(document)
        return cls(ruleset, DeliveryControls.build(ruleset))

    def decide(
        self,
        at: float | str,
        profile: str = "p1",
        placements: Iterable[str] = ("banner",),
        *,
        channel: str = "web",
        context: Context | None = None,
        explain: bool = False,
        read: bool = True,
    ) -> Decision:
        """``read`` False: the profile could not be read (no candidates, fallbacks, degraded)."""
        now = moment(at)
        now_ms = int(now * 1000)
        context = context or {}
        audiences = self.audiences.get(profile, frozenset())
        request = DecisionRequest(
            profile, channel, tuple(PlacementRequest(p) for p in placements), context, "r", explain
        )
        counters = self.counters.setdefault(profile, {})
        eligible = reference.eligible(self.ruleset, audiences, context, now) if read else None
        why = Why(audiences, now) if explain else None
        plan = build_plan(
            self.ruleset, eligible, request, now_ms=now_ms, controls=self.controls, counters=counters,
            totals=self.totals, why=why,
        )  # fmt: skip
        selection = fill(plan, counters)
        self._add(counters, plan.fields_of(selection), now_ms)
        amounts = plan.amounts(selection)
        for offer, checks in plan.totals_of(selection).items():
            for check in checks:
                self.totals.record(check, self.totals.counts.get(key_of(check), 0) + amounts[offer])
        self.plan, self.selection = plan, selection
        return render(plan, selection, self.ruleset, request, decision_id="d", degraded=not read)

    def offers(
        self, at: float | str, profile: str = "p1", placements: Iterable[str] = ("banner",), channel: str = "web"
    ) -> list[list[str]]:
        """The offer ids of each proposition of a decision."""
        decision = self.decide(at, profile, placements, channel=channel)
        return [[item.offer_id for item in p.items] for p in decision.propositions]

    def event(
        self,
        at: float | str,
        offer_id: str,
        counted: str,
        profile: str = "p1",
        *,
        placement: str = "banner",
        channel: str = "web",
    ) -> None:
        """A feedback event (``impression``, ``click``, ``dismiss``, ``custom:<type>``) about a proposal."""
        now_ms = int(moment(at) * 1000)
        self._add(
            self.counters.setdefault(profile, {}),
            self.controls.event_fields(offer_id, counted, channel, placement),
            now_ms,
        )
        for check in self.controls.total_checks(offer_id, counted, now_ms):
            self.totals.record(check, self.totals.counts.get(key_of(check), 0) + 1)

    def _add(self, counters: dict[str, Times], fields: Iterable[str], now_ms: int) -> None:
        """Each field gets the time, and keeps its newest ``keep`` times, as the scripts write them."""
        for name in fields:
            times = tuple(sorted((*counters.get(name, ()), now_ms)))
            counters[name] = times[-self.controls.keep.get(name, len(times)) :]


def explained(decision: Decision) -> Mapping[tuple[str, str], Explanation]:
    """(placement, offer) -> its explanation."""
    return {(e.placement_id, e.offer_id): e for e in decision.explanations}
