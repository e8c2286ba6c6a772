"""From eligible offers to propositions, with caps, contact policies, experiments and scores. Pure.

A decision is made in three steps:

1. ``build_plan``: for each requested placement, the ranked candidates — the
   eligible offers of the placement, minus those capped, suppressed, held out
   by an experiment or over a known total, each with what its proposal must
   fit (``checks``: caps counted on decision) and adds to (``fields``);
   ranked by priority, then score (when the placement has a formula), then
   file order.
2. ``fill``: take candidates in rank order, placement by placement, skipping
   what another placement took (unless duplicates are allowed) and what no
   longer fits the counters — a candidate that does not fit gives way to the
   next, then to the fallback. ``scripts/select.lua`` does exactly this,
   atomically, on the profile's counters in Redis; the property test
   ``tests/decision/store/test_select_script.py`` holds the two to the same answers.
3. ``render``: items with tracking tokens, fallbacks where nothing was taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from decision.core.controls import Check, DeliveryControls, Times, TotalCheck
from decision.core.experiments import assign
from decision.core.tokens import TrackingToken
from decision.core.totals import TotalsView
from decision.core.types import Decision, DecisionRequest, Item, Proposition
from decision.rules.formula import Formula
from decision.rules.types import DECISION, HOLDOUT, HoldoutServes, Offer, Placement, Ruleset, Variant

FALLBACK_RULE = "fallback"
# Selection: the indexes of the candidates taken, per slot.
Selection = tuple[tuple[int, ...], ...]


@dataclass(slots=True)  # not frozen: built per offer and placement on every decision, and frozen inits are slow
class Candidate:
    offer: Offer  # the offer shown: for a holdout stand-in, the placement's fallback
    key: str  # the offer it stands for (duplicates are checked on it)
    rule: str
    score: float | None
    content_json: str
    experiment_id: str = ""
    variant: str = ""
    checks: tuple[Check, ...] = ()
    fields: tuple[str, ...] = ()
    # A holdout stand-in shows the fallback: outside contact policies, like every fallback.
    exempt: bool = False
    # Total caps counted on decision, reserved after the profile's counters.
    totals: tuple[TotalCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class Slot:
    placement: Placement
    limit: int
    candidates: tuple[Candidate, ...]
    # Contact policies counted on decision: what every non-fallback item must fit and adds to.
    checks: tuple[Check, ...] = ()
    fields: tuple[str, ...] = ()
    experiment_id: str = ""
    variant: str = ""
    # Set when the profile is in the placement experiment's holdout group.
    holdout: HoldoutServes | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    slots: tuple[Slot, ...]
    allow_duplicates: bool
    now_ms: int
    # Eligible offers left out, and why (capped, suppressed, holdout, total reached, contact policy).
    excluded: Mapping[str, str] = field(default_factory=dict)

    def fields_of(self, selection: Selection) -> list[str]:
        """The counter fields the selection adds a time to, once per addition."""
        added: list[str] = []
        for slot, taken in zip(self.slots, selection, strict=True):
            for index in taken:
                candidate = slot.candidates[index]
                added.extend(candidate.fields)
                if not candidate.exempt:
                    added.extend(slot.fields)
        return added

    def totals_of(self, selection: Selection) -> dict[str, tuple[TotalCheck, ...]]:
        """Offer id -> its decision-counted total caps, for the offers the selection takes."""
        result: dict[str, tuple[TotalCheck, ...]] = {}
        for slot, taken in zip(self.slots, selection, strict=True):
            for index in taken:
                candidate = slot.candidates[index]
                if candidate.totals:
                    result[candidate.key] = candidate.totals
        return result

    def amounts(self, selection: Selection) -> dict[str, int]:
        """Offer id -> how many times the selection proposes it."""
        result: dict[str, int] = {}
        for slot, taken in zip(self.slots, selection, strict=True):
            for index in taken:
                key = slot.candidates[index].key
                result[key] = result.get(key, 0) + 1
        return result


def _first(pair: tuple[tuple[int, bool, float, int], Candidate]) -> tuple[int, bool, float, int]:
    return pair[0]


def _rank_key(offer: Offer, score: float | None) -> tuple[int, bool, float, int]:
    # Priority first (higher wins), then score (higher wins, undefined last), then file order.
    return (-offer.priority, score is None, -(score or 0.0), offer.position)


def build_plan(
    ruleset: Ruleset,
    eligible: Mapping[str, str] | None,
    request: DecisionRequest,
    *,
    now_ms: int,
    controls: DeliveryControls | None = None,
    counters: Mapping[str, Times] | None = None,
    totals: TotalsView | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Plan:
    """The ranked candidates of every requested placement.

    ``eligible`` maps offer id -> matching rule name; None means the profile
    could not be read: no candidates, every placement gets its fallback.
    ``exclude``: offers left out whatever the counters say (a total cap refused them).
    """
    counters = counters or {}
    excluded: dict[str, str] = {}
    slots: list[Slot] = []
    gates: dict[str, _Gate | None] = {}
    variants: dict[str, Variant | None] = {}
    for wanted in request.placements:
        placement = ruleset.placements[wanted.placement_id]
        limit = min(wanted.max_items or placement.max_items, placement.max_items)
        if eligible is None:
            slots.append(Slot(placement, limit, ()))
            continue
        formula = placement.score
        experiment_id = variant_id = ""
        if placement.experiment is not None:
            experiment_id = placement.experiment.id
            variant = assign(placement.experiment, request.profile_id)
            if variant is None:
                slots.append(
                    Slot(placement, limit, (), experiment_id=experiment_id, variant=HOLDOUT,
                         holdout=placement.experiment.holdout_serves)
                )  # fmt: skip
                continue
            variant_id = variant.id
            formula = variant.score or formula
        checks: tuple[Check, ...] = ()
        fields: tuple[str, ...] = ()
        policy_reason = None
        if controls is not None:
            checks, fields = controls.policy_checks(request.channel, placement.id, now_ms)
            policy_reason = controls.policy_blocked(request.channel, placement.id, counters, now_ms)
        ranked: list[tuple[tuple[int, bool, float, int], Candidate]] = []
        offers, placement_id = ruleset.offers, placement.id
        for offer_id, rule in eligible.items():
            offer = offers[offer_id]
            if placement_id not in offer.placements or offer_id in exclude:
                continue
            if offer_id not in gates:  # once per offer, whatever the placements it is a candidate for
                gates[offer_id] = (
                    _OPEN if controls is None else _gate(offer_id, now_ms, controls, counters, totals, excluded)
                )
                if offer.experiment is not None:
                    variants[offer_id] = assign(offer.experiment, request.profile_id)
            gate = gates[offer_id]
            if gate is None:
                continue
            if offer.experiment is None and formula is None:  # the common case, inline
                candidate = Candidate(offer, offer_id, rule, None, offer.content_json, "", "", gate[0], gate[1])
                candidate.totals = gate[2]
            else:
                variant = variants.get(offer_id)
                found = _candidate(ruleset, offer, rule, placement, request, formula, gate, variant, excluded)
                if found is None:
                    continue
                candidate = found
            if policy_reason is not None and not candidate.exempt:
                excluded.setdefault(offer_id, policy_reason)
                continue
            ranked.append((_rank_key(offer, candidate.score), candidate))
        ranked.sort(key=_first)
        slots.append(Slot(placement, limit, tuple(c for _, c in ranked), checks, fields, experiment_id, variant_id))
    return Plan(tuple(slots), ruleset.allow_duplicates, now_ms, excluded)


# What the counters allow for one offer in this decision: its decision checks, the fields a proposal adds
# to, its decision-counted totals. None: the offer is left out (capped, suppressed, total reached).
_Gate = tuple[tuple[Check, ...], tuple[str, ...], tuple[TotalCheck, ...]]
_OPEN: _Gate = ((), (), ())


def _gate(
    offer_id: str,
    now_ms: int,
    controls: DeliveryControls,
    counters: Mapping[str, Times],
    totals: TotalsView | None,
    excluded: dict[str, str],
) -> _Gate | None:
    if offer_id not in controls.controlled:
        return _OPEN
    reason = controls.blocked(offer_id, counters, now_ms)
    if reason is not None:
        excluded.setdefault(offer_id, reason)
        return None
    total_checks = controls.total_checks(offer_id, None, now_ms)
    if totals is not None and any(totals.used_up(t) for t in total_checks):
        excluded.setdefault(offer_id, "total cap reached")
        return None
    checks, fields = controls.decision_checks(offer_id, now_ms)
    return checks, fields, tuple(t for t in total_checks if t.counted == DECISION)


def _candidate(
    ruleset: Ruleset,
    offer: Offer,
    rule: str,
    placement: Placement,
    request: DecisionRequest,
    formula: Formula | None,
    gate: _Gate,
    variant: Variant | None,
    excluded: dict[str, str],
) -> Candidate | None:
    score = formula.evaluate(request.context, offer.attributes) if formula is not None else None
    if offer.experiment is None:
        return Candidate(offer, offer.id, rule, score, offer.content_json, "", "", *gate[:2], False, gate[2])
    experiment_id = offer.experiment.id
    if variant is None:
        if offer.experiment.holdout_serves is HoldoutServes.NOTHING:
            excluded.setdefault(offer.id, f"holdout of experiment {experiment_id!r}")
            return None
        # In the offer's place, the placement's fallback (never counted, never capped).
        fallback = ruleset.offers[placement.fallback]
        return Candidate(
            fallback, offer.id, FALLBACK_RULE, score, fallback.content_json, experiment_id, HOLDOUT, exempt=True
        )
    content_json = variant.content_json or offer.content_json
    return Candidate(offer, offer.id, rule, score, content_json, experiment_id, variant.id, *gate[:2], False, gate[2])


def fill(plan: Plan, counters: Mapping[str, Times]) -> Selection:
    """Take candidates in rank order where they fit; the Python twin of ``select.lua``."""
    live: dict[str, Times] = dict(counters)
    used: set[str] = set()
    selection: list[tuple[int, ...]] = []
    for slot in plan.slots:
        taken: list[int] = []
        for index, candidate in enumerate(slot.candidates):
            if len(taken) >= slot.limit:
                break
            if not plan.allow_duplicates and candidate.key in used:
                continue
            checks = candidate.checks if candidate.exempt else candidate.checks + slot.checks
            if any(check.room(live) < 1 for check in checks):
                continue
            for name in candidate.fields if candidate.exempt else candidate.fields + slot.fields:
                live[name] = (*live.get(name, ()), plan.now_ms)
            taken.append(index)
            used.add(candidate.key)
        selection.append(tuple(taken))
    return tuple(selection)


def needs_reservation(plan: Plan, selection: Selection) -> bool:
    """Whether the selection adds to the profile's counters (then it must be made by the script)."""
    return bool(plan.fields_of(selection))


def render(
    plan: Plan,
    selection: Selection,
    ruleset: Ruleset,
    request: DecisionRequest,
    *,
    decision_id: str,
    degraded: bool = False,
) -> Decision:
    propositions: list[Proposition] = []
    for slot, taken in zip(plan.slots, selection, strict=True):
        placement = slot.placement
        items = tuple(
            _item(slot.candidates[i], placement, ruleset, request, decision_id, plan.now_ms, slot) for i in taken
        )
        fallback = False
        if not items and slot.holdout is not HoldoutServes.NOTHING:
            offer = ruleset.offers[placement.fallback]
            # A fallback is always served, even if another placement shows it too.
            stand_in = Candidate(offer, offer.id, FALLBACK_RULE, None, offer.content_json, exempt=True)
            items = (_item(stand_in, placement, ruleset, request, decision_id, plan.now_ms, slot),)
            fallback = True
        propositions.append(Proposition(placement.id, items, fallback, slot.experiment_id, slot.variant))
    return Decision(
        propositions=tuple(propositions),
        ruleset_version=ruleset.version,
        degraded=degraded,
        request_id=request.request_id,
        decision_id=decision_id,
    )


def _item(
    candidate: Candidate,
    placement: Placement,
    ruleset: Ruleset,
    request: DecisionRequest,
    decision_id: str,
    now_ms: int,
    slot: Slot,
) -> Item:
    offer = candidate.offer
    token = TrackingToken(decision_id, placement.id, offer.id, ruleset.version, now_ms, request.channel).encode()
    # The offer's own experiment wins; else the placement's (its variant chose the ranking).
    experiment_id, variant = (
        (candidate.experiment_id, candidate.variant) if candidate.experiment_id else (slot.experiment_id, slot.variant)
    )
    return Item(
        offer_id=offer.id,
        content_json=candidate.content_json,
        rule=candidate.rule,
        priority=offer.priority,
        score=candidate.score or 0.0,
        tracking_token=token,
        fallback=candidate.exempt,
        experiment_id=experiment_id,
        variant=variant,
    )
