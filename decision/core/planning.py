"""From eligible offers to propositions, with caps, contact policies, experiments and scores. Pure.

Planning is the one place a decision is made; explanations only word the
verdicts it records (decision.core.verdicts, decision.core.explain).

1. ``build_plan``: for each requested placement, the eligible offers ranked
   by ``rank_key`` (priority, then — in a ``ranking:`` placement — the learned
   draw of ``decision.core.learning``, then the placement's score formula, then file
   order), then — in rank order — those left out (capped, suppressed, held out
   by an experiment, over a known total, under a used-up contact policy), the
   others kept as candidates with what their proposal must fit (``checks``:
   caps and policies counted on decision) and adds to (``fields``). Without
   ``why`` planning is lazy: it stops looking at a placement's offers once
   enough candidates are sure to be taken whatever the live counters say.
   With ``why`` it looks at every offer of the placement and records a verdict
   for each (eligibility failures from the reference semantics).
2. ``fill``: take candidates in rank order, placement by placement, skipping
   what another placement took (unless duplicates are allowed) and what no
   longer fits the counters — a candidate that does not fit gives way to the
   next, then to the fallback. ``scripts/select.lua`` does exactly this,
   atomically, on the profile's counters in Redis; the property test
   ``tests/decision/store/test_select_script.py`` holds the two to the same answers.
3. ``render``: items with tracking tokens, fallbacks where nothing was taken,
   and with ``why`` the explanations of the verdicts.

A held-out offer whose experiment serves the fallback is replaced by a
stand-in showing the fallback: its key is the fallback's id, so it is
de-duplicated as the fallback it shows. One placement never holds two
candidates with the same key: no offer and no tracking token twice in one
proposition, even when duplicates across placements are allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from decision.core.controls import (
    CapReached,
    Check,
    DeliveryControls,
    PolicyReached,
    ProfileBlock,
    Suppressed,
    Times,
    TotalCheck,
    TotalReached,
)
from decision.core.experiments import choose
from decision.core.explain import explanations
from decision.core.ineligible import not_eligible
from decision.core.learning import Draw, Learner
from decision.core.tokens import TokenKeys, TokenWriter
from decision.core.totals import TotalsView
from decision.core.types import Decision, DecisionRequest, Item, Outcome, Proposition
from decision.core.verdicts import (
    BeatenBy,
    ContentValueMissing,
    Elsewhere,
    HeldOut,
    InPlaceOf,
    RankKey,
    RefusedOnCount,
    Shown,
    Verdict,
    rank_key,
)
from decision.rules.formula import Formula
from decision.rules.types import (
    DECISION,
    HOLDOUT,
    Cap,
    ContactPolicy,
    HoldoutServes,
    Offer,
    Placement,
    Ruleset,
    Variant,
)

FALLBACK_RULE = "fallback"
# Selection: the indexes of the candidates taken, per slot.
Selection = tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class Why:
    """Asked by a request with ``explain``: every offer gets a verdict. ``audiences``: the profile's."""

    audiences: AbstractSet[str]
    now: float


@dataclass(slots=True)  # not frozen: built per offer and placement on every decision, and frozen inits are slow
class Candidate:
    offer: Offer  # the offer shown: for a holdout stand-in, the placement's fallback
    key: str  # the offer shown (duplicates are checked on it)
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
    # A holdout stand-in: the held-out offer it takes the place of.
    stands_for: str = ""
    rank: RankKey = (0, 0, 0.0, True, 0.0, 0)
    # In a ``ranking:`` placement: the counts and draw it was ranked by (explanations show them).
    draw: Draw | None = None

    # The fill rule, in one place (``select.lua`` is its Lua twin): a candidate must fit its own checks and,
    # unless exempt (a fallback, outside contact policies), its placement's; taking it adds to the same fields.
    def must_fit(self, placement_checks: tuple[Check, ...]) -> tuple[Check, ...]:
        """What the counters must leave room for, one more each, for this candidate to be taken."""
        return self.checks if self.exempt else self.checks + placement_checks

    def adds_to(self, placement_fields: tuple[str, ...]) -> tuple[str, ...]:
        """The counter fields taking this candidate adds a time to."""
        return self.fields if self.exempt else self.fields + placement_fields


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
    # Offers of the placement left out before the fill, with why (lazily: only those looked at).
    ruled_out: tuple[Verdict, ...] = ()
    # Eligible offers dropped for a higher-ranked candidate showing the same offer: (offer id, rule, rank key).
    shadowed: tuple[tuple[str, str, RankKey], ...] = ()
    # With ``why``: the rank key of every offer of the placement.
    ranks: Mapping[str, RankKey] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    slots: tuple[Slot, ...]
    allow_duplicates: bool
    now_ms: int
    # The profile's counters the plan was made from (explanations replay the fill on them).
    counters: Mapping[str, Times] = field(default_factory=dict)
    why: Why | None = None

    def fields_of(self, selection: Selection) -> list[str]:
        """The counter fields the selection adds a time to, once per addition."""
        added: list[str] = []
        for slot, taken in zip(self.slots, selection, strict=True):
            for index in taken:
                added.extend(slot.candidates[index].adds_to(slot.fields))
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
        """Offer id -> how many times the selection proposes it (stand-ins are never counted)."""
        result: dict[str, int] = {}
        for slot, taken in zip(self.slots, selection, strict=True):
            for index in taken:
                candidate = slot.candidates[index]
                if not candidate.exempt:
                    result[candidate.key] = result.get(candidate.key, 0) + 1
        return result


# What the counters allow for one offer in this decision: its decision checks, the fields a proposal adds
# to, its decision-counted totals.
_Gate = tuple[tuple[Check, ...], tuple[str, ...], tuple[TotalCheck, ...]]
_OPEN: _Gate = ((), (), ())
_OUTCOME_OF_BLOCK = {
    CapReached: Outcome.CAPPED,
    Suppressed: Outcome.SUPPRESSED,
    TotalReached: Outcome.TOTAL_CAP_REACHED,
}


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
    why: Why | None = None,
    learner: Learner | None = None,
    sticky: Mapping[str, str] | None = None,
    ranks: StaticRanks | None = None,
) -> Plan:
    """The ranked candidates of every requested placement.

    ``eligible`` maps offer id -> matching rule name; None means the profile
    could not be read: no candidates, every placement gets its fallback.
    ``exclude``: offers left out whatever the counters say (a total cap refused them).
    ``why``: look at every offer and record its verdict (a request with ``explain``).
    ``learner``: draws for ``ranking:`` placements and ``allocation: auto`` experiments (None: they rank and
    assign as without). ``sticky``: experiment id -> the variant the profile saw (auto experiments keep it).
    ``ranks``: ``static_ranks(ruleset)``, made once per ruleset (None: ranked here).
    """
    planner = _Planner(ruleset, eligible, request, now_ms, controls, counters or {}, totals, exclude, why, learner)
    planner.sticky = sticky or {}
    planner.static = ranks or {}
    slots = tuple(planner.slot(wanted.placement_id, wanted.max_items) for wanted in request.placements)
    return Plan(slots, ruleset.allow_duplicates, now_ms, planner.counters, why)


class _Planner:
    """One plan's state: the gates and experiment variants of offers, computed once whatever their placements."""

    def __init__(
        self,
        ruleset: Ruleset,
        eligible: Mapping[str, str] | None,
        request: DecisionRequest,
        now_ms: int,
        controls: DeliveryControls | None,
        counters: Mapping[str, Times],
        totals: TotalsView | None,
        exclude: frozenset[str],
        why: Why | None,
        learner: Learner | None = None,
    ) -> None:
        self.ruleset, self.eligible, self.request, self.now_ms = ruleset, eligible, request, now_ms
        self.controls, self.counters, self.totals, self.exclude, self.why = controls, counters, totals, exclude, why
        self.learner = learner
        self.sticky: Mapping[str, str] = {}
        self.static: StaticRanks = {}
        # (placement, offer) -> its draw: drawn once per decision, whichever way the rank key is asked for.
        self.draws: dict[tuple[str, str], Draw | None] = {}
        self.gates: dict[str, _Gate | ProfileBlock | TotalReached] = {}
        self.variants: dict[str, Variant | None] = {}
        # Keys of the candidates of the slots planned so far: what a later slot's candidate may find taken.
        self.keys: set[str] = set()

    def slot(self, placement_id: str, max_items: int) -> Slot:
        ruleset, request, why, eligible = self.ruleset, self.request, self.why, self.eligible
        placement = ruleset.placements[placement_id]
        limit = min(max_items or placement.max_items, placement.max_items)
        if eligible is None:
            ruled_out = () if why is None else self._unread(placement)
            return Slot(placement, limit, (), ruled_out=ruled_out, ranks=_ranks(ruled_out))
        formula = placement.score
        experiment_id = variant_id = ""
        if placement.experiment is not None:
            experiment_id = placement.experiment.id
            variant = choose(placement.experiment, request.profile_id, self.sticky, self.learner)
            if variant is None:
                ruled_out = () if why is None else self._held_out_placement(placement, eligible, experiment_id)
                return Slot(placement, limit, (), experiment_id=experiment_id, variant=HOLDOUT,
                            holdout=placement.experiment.holdout_serves, ruled_out=ruled_out,
                            ranks=_ranks(ruled_out))  # fmt: skip
            variant_id = variant.id
            formula = variant.score or formula
        checks: tuple[Check, ...] = ()
        fields: tuple[str, ...] = ()
        policy: PolicyReached | None = None
        if self.controls is not None:
            checks, fields = self.controls.policy_checks(request.channel, placement.id, self.now_ms)
            policy = self.controls.policy_reached(request.channel, placement.id, self.counters, self.now_ms)
        ruled_out_list: list[Verdict] = []
        ranks: dict[str, RankKey] = {}
        if why is not None:  # every offer of the placement, ranked; the ineligible ones with why not
            for offer in ruleset.offers_for(placement.id):
                ranks[offer.id] = rank_key(offer, _score(formula, request, offer), self._draw(placement, offer.id))
                if offer.id not in eligible:
                    key = ranks[offer.id]
                    ruled_out_list.append(
                        not_eligible(offer, placement.id, key, why.audiences, request.context, why.now)
                    )
        ranked = self._ranked(placement, formula, ranks)
        candidates: list[Candidate] = []
        shadowed: list[tuple[str, str, RankKey]] = []
        seen: set[str] = set()
        sure = 0
        for key, offer, rule, score in ranked:
            found = self._candidate(placement, offer, rule, score, key, policy, ruled_out_list)
            if found is None:
                continue
            if found.key in seen:  # the same offer shown twice: only the higher-ranked stays
                if not found.stands_for:
                    shadowed.append((offer.id, rule, key))
                continue
            seen.add(found.key)
            candidates.append(found)
            # Sure to be taken (no checks, not possibly taken by an earlier slot): past `limit` of them, stop.
            sure_taken = not found.must_fit(checks)
            if why is None and sure_taken and (ruleset.allow_duplicates or found.key not in self.keys):
                sure += 1
                if sure >= limit:
                    break
        self.keys.update(seen)
        return Slot(placement, limit, tuple(candidates), checks, fields, experiment_id, variant_id, None,
                    tuple(ruled_out_list), tuple(shadowed), ranks)  # fmt: skip

    def _ranked(
        self, placement: Placement, formula: Formula | None, ranks: Mapping[str, RankKey]
    ) -> Iterable[tuple[RankKey, Offer, str, float | None]]:
        """The eligible offers of the placement in rank order (cheap: no counters looked at)."""
        assert self.eligible is not None
        eligible = self.eligible
        static = self.static.get(placement.id) if formula is None and placement.ranking is None else None
        if static is not None:  # an order fixed by the ruleset: walked as far as the slot needs
            return ((key, offer, rule, None) for key, offer in static if (rule := eligible.get(offer.id)) is not None)
        offers, placement_id, request = self.ruleset.offers, placement.id, self.request
        ranked: list[tuple[RankKey, Offer, str, float | None]] = []
        for offer_id, rule in eligible.items():
            offer = offers[offer_id]
            if placement_id not in offer.placements:
                continue
            score = _score(formula, request, offer)
            key = ranks.get(offer_id) or rank_key(offer, score, self._draw(placement, offer_id))
            ranked.append((key, offer, rule, score))
        ranked.sort(key=_first)  # rank keys are unique (file position)
        return ranked

    def _candidate(
        self,
        placement: Placement,
        offer: Offer,
        rule: str,
        score: float | None,
        key: RankKey,
        policy: PolicyReached | None,
        ruled_out: list[Verdict],
    ) -> Candidate | None:
        """The offer's candidate in this placement, or None (its verdict added to ``ruled_out``)."""
        offer_id = offer.id
        gate = self._gate(offer_id)
        if not isinstance(gate, tuple):
            ruled_out.append(Verdict(offer_id, placement.id, _OUTCOME_OF_BLOCK[type(gate)], key, gate, rule))
            return None
        if offer.experiment is None:
            content_json = self._content(offer, placement.id, key, rule, ruled_out)
            if content_json is None:
                return None
            candidate = Candidate(offer, offer_id, rule, score, content_json, "", "", gate[0], gate[1])
            candidate.totals = gate[2]
        else:
            if offer_id not in self.variants:
                self.variants[offer_id] = choose(offer.experiment, self.request.profile_id, self.sticky, self.learner)
            variant = self.variants[offer_id]
            experiment_id = offer.experiment.id
            if variant is None:
                held = HeldOut(experiment_id, placement=False)
                ruled_out.append(Verdict(offer_id, placement.id, Outcome.HOLDOUT, key, held, rule))
                if offer.experiment.holdout_serves is HoldoutServes.NOTHING:
                    return None
                # In the offer's place, the placement's fallback (never counted, never capped).
                fallback = self.ruleset.offers[placement.fallback]
                return Candidate(fallback, fallback.id, FALLBACK_RULE, score, fallback_content(fallback, self.request),
                                 experiment_id,
                                 HOLDOUT, exempt=True, stands_for=offer_id, rank=key)  # fmt: skip
            content_json = self._content(offer, placement.id, key, rule, ruled_out, variant)
            if content_json is None:
                return None
            candidate = Candidate(offer, offer_id, rule, score, content_json, experiment_id, variant.id, *gate[:2])
            candidate.totals = gate[2]
        if policy is not None:
            ruled_out.append(Verdict(offer_id, placement.id, Outcome.CONTACT_POLICY, key, policy, rule))
            return None
        candidate.rank = key
        candidate.draw = self.draws.get((placement.id, offer_id))
        return candidate

    def _draw(self, placement: Placement, offer_id: str) -> Draw | None:
        if self.learner is None or placement.ranking is None:
            return None
        found = self.draws.get((placement.id, offer_id))
        if found is None:
            found = self.draws[(placement.id, offer_id)] = self.learner.offer(placement, offer_id)
        return found

    def _content(
        self,
        offer: Offer,
        placement_id: str,
        key: RankKey,
        rule: str,
        ruled_out: list[Verdict],
        variant: Variant | None = None,
    ) -> str | None:
        """The content for this decision (the variant's own, if it has one, else the offer's), placeholders
        rendered; None (its verdict added to ``ruled_out``) when a value is missing and the offer says skip."""
        if variant is not None and variant.content_json is not None:
            content_json, template = variant.content_json, variant.template
        else:
            content_json, template = offer.content_json, offer.template
        if template is None:
            return content_json
        rendered = template.render_json(self.request.context)
        if rendered is None:
            missing = ContentValueMissing(template.missing(self.request.context))
            ruled_out.append(Verdict(offer.id, placement_id, Outcome.CONTENT_MISSING, key, missing, rule))
        return rendered

    def _gate(self, offer_id: str) -> _Gate | ProfileBlock | TotalReached:
        """Once per offer, whatever the placements it is a candidate for."""
        gate = self.gates.get(offer_id)
        if gate is None:
            gate = self.gates[offer_id] = self._open(offer_id)
        return gate

    def _open(self, offer_id: str) -> _Gate | ProfileBlock | TotalReached:
        controls, now_ms = self.controls, self.now_ms
        if controls is None or offer_id not in controls.controlled:
            return _OPEN
        blocked = controls.blocked(offer_id, self.counters, now_ms)
        if blocked is not None:
            return blocked
        total_checks = controls.total_checks(offer_id, None, now_ms)
        reached = None if self.totals is None else self.totals.reached(total_checks)
        if reached is None and offer_id in self.exclude:  # refused by the reservation: counted as its limit
            check = next(t for t in total_checks if t.counted == DECISION)
            reached = TotalReached(check, check.limit)
        if reached is not None:
            return reached
        checks, fields = controls.decision_checks(offer_id, now_ms)
        return checks, fields, tuple(t for t in total_checks if t.counted == DECISION)

    def _unread(self, placement: Placement) -> tuple[Verdict, ...]:
        return tuple(
            Verdict(o.id, placement.id, Outcome.PROFILE_UNAVAILABLE, rank_key(o))
            for o in self.ruleset.offers_for(placement.id)
        )

    def _held_out_placement(
        self, placement: Placement, eligible: Mapping[str, str], experiment_id: str
    ) -> tuple[Verdict, ...]:
        assert self.why is not None
        why, context = self.why, self.request.context
        verdicts = []
        for offer in self.ruleset.offers_for(placement.id):
            key = rank_key(offer, _score(placement.score, self.request, offer))
            rule = eligible.get(offer.id)
            if rule is None:
                verdicts.append(not_eligible(offer, placement.id, key, why.audiences, context, why.now))
            else:
                verdicts.append(
                    Verdict(offer.id, placement.id, Outcome.HOLDOUT, key, HeldOut(experiment_id, True), rule)
                )
        return tuple(verdicts)


# Placement id -> its offers in rank order with their rank keys, for placements whose order does not depend
# on the request (no score formula, no learned ranking): made once per ruleset.
StaticRanks = Mapping[str, tuple[tuple[RankKey, Offer], ...]]


def static_ranks(ruleset: Ruleset) -> StaticRanks:
    """The rank order of each placement that ranks its offers the same way on every request (``rank_key``
    without score or draw); a variant's score formula, when an experiment gives one, is ranked per request."""
    return {
        placement.id: tuple(sorted(((rank_key(o), o) for o in ruleset.offers_for(placement.id)), key=_by_key))
        for placement in ruleset.placements.values()
        if placement.score is None and placement.ranking is None
    }


def _by_key(entry: tuple[RankKey, Offer]) -> RankKey:
    return entry[0]


def fallback_content(offer: Offer, request: DecisionRequest) -> str:
    """A fallback is always served: a missing value without a default leaves its placeholder blank."""
    template = offer.template
    return offer.content_json if template is None else template.render_json(request.context, skip=False) or "{}"


def _first(entry: tuple[RankKey, Offer, str, float | None]) -> RankKey:
    return entry[0]


def _score(formula: Formula | None, request: DecisionRequest, offer: Offer) -> float | None:
    return None if formula is None else formula.evaluate(request.context, offer.attributes)


def _ranks(verdicts: tuple[Verdict, ...]) -> dict[str, RankKey]:
    return {v.offer_id: v.rank_key for v in verdicts}


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
            if any(check.room(live) < 1 for check in candidate.must_fit(slot.checks)):
                continue
            _count(live, candidate, slot, plan.now_ms)
            taken.append(index)
            used.add(candidate.key)
        selection.append(tuple(taken))
    return tuple(selection)


def _count(live: dict[str, Times], candidate: Candidate, slot: Slot, now_ms: int) -> None:
    for name in candidate.adds_to(slot.fields):
        live[name] = (*live.get(name, ()), now_ms)


def needs_reservation(plan: Plan, selection: Selection) -> bool:
    """Whether the selection adds to the profile's counters (then it must be made by the script)."""
    return bool(plan.fields_of(selection))


def verdicts(plan: Plan, selection: Selection, ruleset: Ruleset) -> tuple[Verdict, ...]:
    """One verdict per offer of every slot (a plan made with ``why``), slots in order, offers by rank.

    Replays the fill on the counters read with the final selection (made by
    ``fill`` or by select.lua on the live counters): the first reason each
    candidate not taken was passed over."""
    live: dict[str, Times] = dict(plan.counters)
    used: dict[str, str] = {}  # key -> the placement that took it
    result: list[Verdict] = []
    for slot, taken in zip(plan.slots, selection, strict=True):
        placement_id = slot.placement.id
        found = {v.offer_id: v for v in slot.ruled_out}
        by_key: dict[str, Verdict] = {}
        last = slot.candidates[taken[-1]].offer.id if taken else ""
        count = 0
        for index, candidate in enumerate(slot.candidates):
            if index in taken:
                count += 1
                _count(live, candidate, slot, plan.now_ms)
                used.setdefault(candidate.key, placement_id)
                if candidate.stands_for:
                    shown = InPlaceOf(candidate.stands_for, candidate.experiment_id)
                    verdict = Verdict(
                        candidate.key, placement_id, Outcome.FALLBACK, candidate.rank, shown, FALLBACK_RULE
                    )
                else:
                    position = Shown(taken.index(index) + 1, len(taken))
                    verdict = Verdict(candidate.key, placement_id, Outcome.SELECTED, candidate.rank, position,
                                      candidate.rule, candidate.draw)  # fmt: skip
            else:
                verdict = replace(
                    _passed_over(plan, slot, candidate, live, used, count, last, len(taken)), draw=candidate.draw
                )
            by_key[candidate.key] = verdict
            if index in taken or not candidate.stands_for:  # a stand-in not shown says nothing of the fallback
                found[candidate.key] = verdict
        for offer_id, rule, key in slot.shadowed:  # as the stand-in that showed (or would have shown) it
            base = by_key[offer_id]
            if base.outcome is not Outcome.FALLBACK:
                found[offer_id] = replace(base, rule=rule, rank_key=key)
        if not taken and slot.holdout is not HoldoutServes.NOTHING:
            fallback = ruleset.offers[slot.placement.fallback]
            key = slot.ranks.get(fallback.id) or rank_key(fallback)
            found[fallback.id] = Verdict(fallback.id, placement_id, Outcome.FALLBACK, key)
        result.extend(sorted(found.values(), key=_rank_of))
    return tuple(result)


def _rank_of(verdict: Verdict) -> RankKey:
    return verdict.rank_key


def _passed_over(
    plan: Plan,
    slot: Slot,
    candidate: Candidate,
    live: Mapping[str, Times],
    used: Mapping[str, str],
    count: int,
    last: str,
    shown: int,
) -> Verdict:
    placement_id, key, rank, rule = slot.placement.id, candidate.key, candidate.rank, candidate.rule
    if not plan.allow_duplicates and key in used:
        return Verdict(key, placement_id, Outcome.PROPOSED_ELSEWHERE, rank, Elsewhere(used[key]), rule)
    if count >= slot.limit:
        return Verdict(key, placement_id, Outcome.LOST_RANKING, rank, BeatenBy(last, shown), rule)
    for check in candidate.must_fit(slot.checks):
        room = check.room(live)
        if room >= 1:
            continue
        if isinstance(check.source, ContactPolicy):
            reached = PolicyReached(check.source, check.limit - room)
            return Verdict(key, placement_id, Outcome.CONTACT_POLICY, rank, reached, rule)
        if isinstance(check.source, Cap):
            return Verdict(key, placement_id, Outcome.CAPPED, rank, CapReached(check.source, check.limit - room), rule)
    return Verdict(key, placement_id, Outcome.CAPPED, rank, RefusedOnCount(), rule)


def render(
    plan: Plan,
    selection: Selection,
    ruleset: Ruleset,
    request: DecisionRequest,
    *,
    decision_id: str,
    degraded: bool = False,
    keys: TokenKeys | None = None,
) -> Decision:
    """The decision; with the explanations of its verdicts when the plan was made with ``why``.

    Tracking tokens are signed with ``keys`` for the request's profile (None: left unsigned,
    ``TrackingToken.encode()``); a dry run's items get none: nothing can be recorded about them."""
    tokens = (
        None
        if request.dry_run
        else TokenWriter(keys, request.profile_id, decision_id, plan.now_ms, ruleset.version, request.channel)
    )
    propositions: list[Proposition] = []
    for slot, taken in zip(plan.slots, selection, strict=True):
        placement = slot.placement
        items = tuple(_item(slot.candidates[i], placement, slot, tokens) for i in taken)
        fallback = False
        if not items and slot.holdout is not HoldoutServes.NOTHING:
            offer = ruleset.offers[placement.fallback]
            # A fallback is always served, even if another placement shows it too.
            stand_in = Candidate(offer, offer.id, FALLBACK_RULE, None, fallback_content(offer, request), exempt=True)
            items = (_item(stand_in, placement, slot, tokens),)
            fallback = True
        propositions.append(Proposition(placement.id, items, fallback, slot.experiment_id, slot.variant))
    explained = () if plan.why is None else explanations(verdicts(plan, selection, ruleset), plan.now_ms)
    return Decision(
        propositions=tuple(propositions),
        ruleset_version=ruleset.version,
        degraded=degraded,
        request_id=request.request_id,
        decision_id=decision_id,
        explanations=explained,
        dry_run=request.dry_run,
    )


def decide(
    ruleset: Ruleset,
    eligible: Mapping[str, str] | None,
    request: DecisionRequest,
    *,
    decision_id: str,
    now_ms: int,
    why: Why | None = None,
    keys: TokenKeys | None = None,
) -> Decision:
    """Fill each requested placement, in request order, without counters (no caps in play).

    ``eligible`` maps offer id -> matching rule name; None means the profile
    could not be read, and every placement gets its fallback (degraded).
    Decisions with caps and contact policies go through ``decision.service.reservations``.
    """
    plan = build_plan(ruleset, eligible, request, now_ms=now_ms, why=why)
    selection = fill(plan, {})
    return render(plan, selection, ruleset, request, decision_id=decision_id, degraded=eligible is None, keys=keys)


def _item(candidate: Candidate, placement: Placement, slot: Slot, tokens: TokenWriter | None) -> Item:
    offer = candidate.offer
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
        tracking_token="" if tokens is None else tokens.token(placement.id, offer.id, experiment_id, variant),
        fallback=candidate.exempt,
        experiment_id=experiment_id,
        variant=variant,
    )
