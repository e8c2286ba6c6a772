"""Why not this offer: the smallest changes that would make an offer win for this profile. Pure.

Planning (decision.core.planning) is the one place that decides; this module starts from the verdict it
recorded for the offer asked about and, for every obstacle after eligibility, asks planning again:

1. **Eligibility** (the verdict says schedule, audience or condition). For each of the offer's rules: the
   schedule's start (a wait) or its end (never again), the audiences to join or leave, and for the condition
   the smallest sets of attribute values that make it true — ways through ``and`` (all), ``or`` (any one)
   and ``not`` (the opposite), each attribute given one value meeting all its requirements, the closest to
   the value the decision saw, and the condition checked true with it in the reference semantics
   (decision.rules.reference) before it is offered.
2. **Everything after** (holdouts, caps, suppression, total caps, content, contact policies, other placements,
   ranking). With a way's changes applied and the offer taken as eligible, planning decides again — same
   counters, totals, experiment variants and Thompson draws — and the offer's new verdict is the next obstacle.
   Time lifts a cap once every cap counting in its field has room (the latest ``Usage.until_ms`` of
   ``DeliveryControls.cap_usage``, the dates the profile page shows), a contact policy (``controls.reopens_ms``),
   a suppression (``controls.suppressed_until_ms``) and a total cap (its bucket's end, ``periods.bucket_end_ms``),
   unless the way's rule no longer matches when the latest wait is over (its schedule ends first: never); nothing
   lifts a holdout (a hash of the profile: sticky), an ended schedule or a lifetime cap; the ranking needs a change
   of the rules: rank above the last offer shown, on the first part of the one rank key (``verdicts.rank_key``)
   where they differ.
3. The ways that end with the offer shown are the remedies, fewest changes first; what closes the others is
   said (``WhyNot.never``).

Computed only for the offers a request names in ``why_not``; worded by ``decision.core.explain``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from decision.core.controls import (
    CapReached,
    DeliveryControls,
    PolicyReached,
    Suppressed,
    Times,
    TotalReached,
    count_since,
    period_text,
    reopens_ms,
    suppressed_until_ms,
)
from decision.core.counters import offer_counter_field, policy_counter_field
from decision.core.learning import Draw, Learner, Rates
from decision.core.periods import bucket, bucket_end_ms, window_start_ms
from decision.core.planning import Plan, Selection, Why, build_plan, fill, verdicts
from decision.core.totals import TotalsView
from decision.core.types import (
    Change,
    DecisionRequest,
    JoinAudience,
    LeaveAudience,
    Never,
    Outcome,
    Outrank,
    RankPart,
    Remedy,
    Requirement,
    SetValue,
    WaitFor,
    WaitUntil,
    WhyNot,
)
from decision.core.verdicts import (
    BeatenBy,
    ContentValueMissing,
    Elsewhere,
    HeldOut,
    RankKey,
    RefusedOnCount,
    Verdict,
)
from decision.rules.patterns import PROFILE_SCOPE
from decision.rules.reference import OPERATORS, condition_holds, matching_rule
from decision.rules.types import (
    DISMISS,
    HOLDOUT,
    AllOf,
    AttrType,
    Cap,
    Condition,
    Context,
    ContextValue,
    EligibilityRule,
    Experiment,
    Not,
    Offer,
    Op,
    Period,
    Placement,
    Predicate,
    Ruleset,
    Scalar,
)

MAX_WAYS = 8  # ways through the offer's rules asked about (the fewest changes first)
MAX_FIXES = 8  # alternative fixes kept per part of a condition
MAX_STEPS = 8  # obstacles lifted along one way (each kind lifts once)
_ELIGIBILITY = frozenset(
    {Outcome.OUTSIDE_SCHEDULE, Outcome.NOT_IN_AUDIENCE, Outcome.IN_EXCLUDED_AUDIENCE, Outcome.CONDITION_FALSE}
)


@dataclass(frozen=True, slots=True)
class Situation:
    """What one decision was made from: planning is asked again with it, a way's changes applied."""

    ruleset: Ruleset
    request: DecisionRequest  # the profile's attributes joined to the context (core.requests.with_profile)
    audiences: AbstractSet[str]
    now_ms: int
    counters: Mapping[str, Times] = field(default_factory=dict)
    controls: DeliveryControls | None = None
    totals: TotalsView | None = None
    exclude: frozenset[str] = frozenset()
    # Experiment id -> the variant the decision used (variants are replayed, never drawn again).
    sticky: Mapping[str, str] = field(default_factory=dict)
    # (placement id, offer id) -> the Thompson draw the decision ranked by (None: none, or exploring).
    draws: Mapping[tuple[str, str], float | None] = field(default_factory=dict)


def answers(
    plan: Plan,
    selection: Selection,
    ruleset: Ruleset,
    request: DecisionRequest,
    *,
    controls: DeliveryControls | None = None,
    totals: TotalsView | None = None,
    exclude: frozenset[str] = frozenset(),
    sticky: Mapping[str, str] | None = None,
) -> tuple[WhyNot, ...]:
    """One answer per offer of ``request.why_not`` and requested placement offering it, for a plan made with
    ``why``; ``controls`` ... ``sticky``: what the plan was made with (its counters, time and audiences it holds)."""
    if not request.why_not:
        return ()
    found = {(v.offer_id, v.placement_id): v for v in verdicts(plan, selection, ruleset)}
    replay, draws = _replayed(plan, sticky or {})
    audiences = plan.why.audiences if plan.why is not None else frozenset()
    situation = Situation(ruleset, request, audiences, plan.now_ms, plan.counters, controls, totals, exclude, replay,
                          draws)  # fmt: skip
    result = []
    for offer_id in request.why_not:
        for slot in plan.slots:
            verdict = found.get((offer_id, slot.placement.id))
            if verdict is not None:
                result.append(why_not(verdict, situation))
    return tuple(result)


def _replayed(plan: Plan, sticky: Mapping[str, str]) -> tuple[dict[str, str], dict[tuple[str, str], float | None]]:
    """The variants the plan used (as sticky ones: planning again keeps them) and the draws it ranked by."""
    replay = dict(sticky)
    draws: dict[tuple[str, str], float | None] = {}
    for slot in plan.slots:
        if slot.experiment_id and slot.variant and slot.variant != HOLDOUT:
            replay[slot.experiment_id] = slot.variant
        for candidate in slot.candidates:
            if candidate.experiment_id and candidate.variant and candidate.variant != HOLDOUT:
                replay.setdefault(candidate.experiment_id, candidate.variant)
        for offer_id, key in slot.ranks.items():
            draws[(slot.placement.id, offer_id)] = -key[2] if key[1] else None
    return replay, draws


def why_not(verdict: Verdict, situation: Situation) -> WhyNot:
    """The answer for one offer in one placement, from its verdict in the decision."""
    offer = situation.ruleset.offers[verdict.offer_id]
    answer = WhyNot(offer.id, verdict.placement_id, verdict.outcome)
    if answer.shown:
        return answer
    if verdict.outcome is Outcome.PROFILE_UNAVAILABLE:
        return dataclasses.replace(answer, never=(Never(Outcome.PROFILE_UNAVAILABLE),))
    if verdict.outcome in _ELIGIBILITY:
        ways, never = eligibility_ways(offer, situation)
    else:  # eligible: the obstacles come after
        ways, never = [_Way((), verdict.rule, situation.audiences, situation.request.context)], []
    remedies: list[Remedy] = []
    for way in ways[:MAX_WAYS]:
        end = _walk(offer, verdict.placement_id, way, situation, verdict.outcome)
        if isinstance(end, Remedy):
            if end not in remedies:
                remedies.append(end)
        elif end not in never:
            never.append(end)
    remedies.sort(key=_size)
    return dataclasses.replace(answer, remedies=tuple(remedies), never=tuple(never))


def _size(remedy: Remedy) -> int:
    return len(remedy.changes)


# -- 1. eligibility -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Way:
    """Changes that make one of the offer's rules match, with the audiences and context they leave."""

    changes: tuple[Change, ...]
    rule: str
    audiences: AbstractSet[str]
    context: Context


def eligibility_ways(offer: Offer, situation: Situation) -> tuple[list[_Way], list[Never]]:
    """For each of the offer's rules, the ways to make it match (fewest changes first), and the rules closed for
    good (an ended schedule, a condition no value meets)."""
    ways: list[_Way] = []
    never: list[Never] = []
    for rule in offer.rules:
        base = _schedule_and_audiences(rule, situation)
        if isinstance(base, Never):
            never.append(base)
            continue
        changes, audiences = base
        context = situation.request.context
        if rule.condition is None or condition_holds(rule.condition, context):
            ways.append(_Way(changes, rule.name, audiences, context))
            continue
        fixed = list(condition_ways(rule.condition, context, situation.ruleset))
        if not fixed:
            never.append(Never(Outcome.CONDITION_FALSE, rule.name))
        ways.extend(_Way(changes + values, rule.name, audiences, after) for values, after in fixed)
    ways.sort(key=lambda way: len(way.changes))
    return ways, never


def _schedule_and_audiences(
    rule: EligibilityRule, situation: Situation
) -> tuple[tuple[Change, ...], frozenset[str]] | Never:
    now = situation.now_ms / 1000
    changes: list[Change] = []
    schedule = rule.schedule
    if not schedule.contains(now):
        if schedule.end is not None and now >= schedule.end:
            return Never(Outcome.OUTSIDE_SCHEDULE, rule.name, round(schedule.end * 1000))
        assert schedule.start is not None
        changes.append(WaitUntil(round(schedule.start * 1000), WaitFor.SCHEDULE, rule.name))
    audiences = set(situation.audiences)
    for name in rule.audiences.all:
        if name not in audiences:
            changes.append(JoinAudience((name,)))
            audiences.add(name)
    if rule.audiences.any and not audiences.intersection(rule.audiences.any):
        changes.append(JoinAudience(tuple(rule.audiences.any), any=True))
        audiences.add(rule.audiences.any[0])
    for name in rule.audiences.none:
        if name in audiences:
            changes.append(LeaveAudience(name))
            audiences.discard(name)
    return tuple(changes), frozenset(audiences)


# An attribute -> what its value must meet, for one way to make a condition true (or false).
_Fix = dict[str, tuple[Requirement, ...]]


def condition_ways(
    condition: Condition, context: Context, ruleset: Ruleset
) -> Iterator[tuple[tuple[SetValue, ...], Context]]:
    """The ways to make ``condition`` true by changing attribute values, fewest attributes first: the values
    (``SetValue``) and the context with them. Only ways the reference semantics confirm."""
    known = known_values(ruleset)
    for fix in _fixes(condition, context, True):
        values: list[SetValue] = []
        after = dict(context)
        for attribute, requirements in fix.items():
            actual = context.get(attribute)
            solved = solve(requirements, actual, declared_type(ruleset, attribute), known.get(attribute, ()))
            if isinstance(solved, _Unsolvable):
                break
            values.append(SetValue(attribute, actual, requirements, solved))
            if solved is None:
                after.pop(attribute, None)
            else:
                after[attribute] = solved
        else:
            if condition_holds(condition, after):
                yield tuple(values), after


def _fixes(c: Condition, context: Context, want: bool) -> list[_Fix]:
    """The ways to give ``c`` the truth value ``want``, each as requirements per attribute, fewest attributes first."""
    if condition_holds(c, context) is want:
        return [{}]
    if isinstance(c, Predicate):
        return [{c.attribute: (Requirement(c.op, c.operand, want),)}]
    if isinstance(c, Not):
        return _fixes(c.child, context, not want)
    every = isinstance(c, AllOf) is want  # `and` made true, `or` made false: every part must be
    if every:
        combined: list[_Fix] = [{}]
        for child in c.children:
            options = _fixes(child, context, want)
            combined = _fewest([_merge(a, b) for a in combined for b in options])
        return combined
    return _fewest([fix for child in c.children for fix in _fixes(child, context, want)])


def _merge(a: _Fix, b: _Fix) -> _Fix:
    merged = dict(a)
    for attribute, requirements in b.items():
        merged[attribute] = tuple(dict.fromkeys(merged.get(attribute, ()) + requirements))
    return merged


def _fewest(fixes: list[_Fix]) -> list[_Fix]:
    unique: list[_Fix] = []
    for fix in sorted(fixes, key=len):
        if fix not in unique:
            unique.append(fix)
    return unique[:MAX_FIXES]


def declared_type(ruleset: Ruleset, attribute: str) -> AttrType | None:
    """How the rules see an attribute, when the ruleset declares it (``attributes:``, ``profile_attributes:``)."""
    if attribute.startswith(PROFILE_SCOPE):
        declared = ruleset.profile_attributes.get(attribute[len(PROFILE_SCOPE) :])
        return None if declared is None else declared.rule_type
    return ruleset.attributes.get(attribute)


def known_values(ruleset: Ruleset) -> dict[str, tuple[Scalar, ...]]:
    """Attribute -> every operand the ruleset's conditions compare it with: the values people actually send."""
    found: dict[str, dict[Scalar, None]] = {}

    def visit(c: Condition) -> None:
        if isinstance(c, Predicate):
            operands = c.operand if isinstance(c.operand, tuple) else (c.operand,)
            found.setdefault(c.attribute, {}).update(dict.fromkeys(operands))
        elif isinstance(c, Not):
            visit(c.child)
        else:
            for child in c.children:
                visit(child)

    for offer in ruleset.offers.values():
        for rule in offer.rules:
            if rule.condition is not None:
                visit(rule.condition)
    return {attribute: tuple(values) for attribute, values in found.items()}


class _Unsolvable:
    """No value meets the requirements (e.g. above 10 and below 5)."""


UNSOLVABLE = _Unsolvable()


def solve(
    requirements: tuple[Requirement, ...],
    actual: ContextValue | None,
    declared: AttrType | None = None,
    known: Iterable[Scalar] = (),
) -> ContextValue | _Unsolvable | None:
    """A value meeting every requirement, of the declared type, the closest to ``actual``: the values the
    requirements and the ruleset name first, then made-up ones; None: the attribute left out."""
    best: tuple[tuple[bool, bool, bool, float, int], ContextValue | None] | None = None
    for order, (value, made_up) in enumerate(_candidates(requirements, actual, declared, known)):
        if value is not None and not _of_type(value, declared):
            continue
        if not all(OPERATORS[r.op](value, r.operand) is r.holds for r in requirements):
            continue
        retyped = actual is not None and value is not None and type(value) is not type(actual)
        rank = (value is None, made_up, retyped, _distance(value, actual), order)
        if best is None or rank < best[0]:
            best = (rank, value)
    return UNSOLVABLE if best is None else best[1]


def _candidates(
    requirements: tuple[Requirement, ...],
    actual: ContextValue | None,
    declared: AttrType | None,
    known: Iterable[Scalar],
) -> Iterator[tuple[ContextValue | None, bool]]:
    operands: list[Scalar] = []
    for requirement in requirements:
        operand = requirement.operand
        if requirement.op is not Op.EXISTS:  # its operand is no value of the attribute
            operands.extend(operand if isinstance(operand, tuple) else (operand,))
    scalars = [*operands, *known]
    listed = declared is AttrType.LIST or isinstance(actual, tuple)
    for value in scalars:
        yield value, False
        if isinstance(value, float):
            step = _step(value)
            yield value + step, False
            yield value - step, False
    if listed:  # list attributes: add or remove an item
        items = actual if isinstance(actual, tuple) else ()
        for value in scalars:
            yield (*items, value), False
            yield tuple(i for i in items if i != value), False
        yield (), True
    for value in scalars:
        if isinstance(value, str):
            yield value + "_", True
            if isinstance(actual, str):
                yield actual + value, True
        elif isinstance(value, bool):
            yield not value, True
    yield any_value(declared), True
    yield None, False


def _step(value: float) -> float:
    """The smallest move past an operand that reads naturally: 1 for whole numbers, else its last decimal."""
    if value.is_integer():
        return 1.0
    decimals = len(repr(value).partition(".")[2].partition("e")[0])
    return 10.0 ** -min(max(decimals, 1), 6)


def _of_type(value: ContextValue, declared: AttrType | None) -> bool:
    if declared is None:
        return True
    if declared is AttrType.LIST:
        return isinstance(value, tuple)
    if declared is AttrType.BOOL:
        return isinstance(value, bool)
    if declared is AttrType.NUMBER:
        return isinstance(value, float) and not isinstance(value, bool)
    return isinstance(value, str)


def _distance(value: ContextValue | None, actual: ContextValue | None) -> float:
    numbers = (value, actual)
    if all(isinstance(n, float) and not isinstance(n, bool) for n in numbers):
        assert isinstance(value, float) and isinstance(actual, float)
        return abs(value - actual)
    return 0.0 if value == actual else 1.0


# -- 2. after eligibility: planning again ----------------------------------------------------------------------------


class _Replay(Learner):
    """The decision's Thompson draws, replayed: planning again ranks as the decision did."""

    def __init__(self, draws: Mapping[tuple[str, str], float | None]) -> None:
        super().__init__(Rates(), random.Random(0))
        self.draws = draws

    def offer(self, placement: Placement, offer_id: str) -> Draw | None:
        if placement.ranking is None:
            return None
        return Draw(0, 0, self.draws.get((placement.id, offer_id)))

    def variant(self, experiment: Experiment) -> None:
        return None  # the variants used are replayed through ``sticky``; the others go by weight


def _eligible(ruleset: Ruleset, request: DecisionRequest, audiences: AbstractSet[str], now: float) -> dict[str, str]:
    """Offer id -> its first matching rule, for the offers of the requested placements (reference semantics)."""
    wanted = {p.placement_id for p in request.placements}
    found: dict[str, str] = {}
    for offer in ruleset.offers.values():
        if wanted.intersection(offer.placements):
            rule = matching_rule(offer, audiences, request.context, now)
            if rule is not None:
                found[offer.id] = rule
    return found


def _walk(offer: Offer, placement_id: str, way: _Way, situation: Situation, outcome: Outcome) -> Remedy | Never:
    """Plan again with the way's changes until the offer is shown, or an obstacle nothing lifts (``outcome``: the
    offer's in the decision)."""
    ruleset, now_ms = situation.ruleset, situation.now_ms
    changes = list(way.changes)
    context = dict(way.context)
    counters = dict(situation.counters)
    totals, exclude = situation.totals, set(situation.exclude)
    lifted: set[str] = set()
    learner = _Replay(situation.draws)
    why = Why(way.audiences, now_ms / 1000)
    verdict: Verdict | None = None
    for _ in range(MAX_STEPS):
        request = dataclasses.replace(situation.request, context=context, explain=True, why_not=())
        eligible = _eligible(ruleset, request, way.audiences, why.now)
        eligible.setdefault(offer.id, way.rule)  # what remains is a wait, said already
        plan = build_plan(ruleset, eligible, request, now_ms=now_ms, controls=situation.controls, counters=counters,
                          totals=totals, exclude=frozenset(exclude), why=why, learner=learner,
                          sticky=situation.sticky)  # fmt: skip
        found = verdicts(plan, fill(plan, counters), ruleset)
        mine = next((v for v in found if v.offer_id == offer.id and v.placement_id == placement_id), None)
        if mine is None:  # no verdict of its own: cannot happen while every offer of a placement gets one
            break
        verdict = mine
        e = verdict.evidence
        if verdict.outcome in (Outcome.SELECTED, Outcome.FALLBACK):
            return Remedy(tuple(changes), way.rule)
        if isinstance(e, BeatenBy):
            theirs = next(v for v in found if v.offer_id == e.offer_id and v.placement_id == placement_id)
            return Remedy((*changes, outrank(e.offer_id, verdict.rank_key, theirs.rank_key)), way.rule)
        if isinstance(e, HeldOut):
            return Never(Outcome.HOLDOUT, e.experiment_id)
        if isinstance(e, Elsewhere):
            return Never(Outcome.PROPOSED_ELSEWHERE, e.placement_id)
        lift = _lift(offer, verdict, counters, situation)
        if isinstance(lift, Never):
            return lift
        if lift[0] in lifted:
            return _never(verdict)
        name, change = lift
        lifted.add(name)
        changes.append(change)
        ended = _ends_first(offer, way, context, changes)
        if ended is not None:
            return ended
        if isinstance(change, SetValue) and change.value is not None:
            context[change.attribute] = change.value
        elif isinstance(e, TotalReached):
            exclude.discard(offer.id)
            totals = _without(totals, offer.id)
        else:
            counters[name] = ()
    return Never(outcome, "") if verdict is None else Never(verdict.outcome, _subject(verdict))


def _ends_first(offer: Offer, way: _Way, context: Context, changes: list[Change]) -> Never | None:
    """The way's schedule ending before its waits are over (the latest of them): the offer matches no rule then,
    nothing makes it win on this way; None: it still matches (the reference semantics, as ``_eligible``)."""
    waits = [c for c in changes if isinstance(c, WaitUntil)]
    if not waits:
        return None
    last = max(waits, key=lambda w: w.at_ms)
    if matching_rule(offer, way.audiences, context, last.at_ms / 1000) is not None:
        return None
    end = next(r.schedule.end for r in offer.rules if r.name == way.rule)
    return Never(Outcome.OUTSIDE_SCHEDULE, way.rule, None if end is None else round(end * 1000), last)


def _lift(
    offer: Offer, verdict: Verdict, counters: Mapping[str, Times], situation: Situation
) -> tuple[str, Change] | Never:
    """The change that lifts a verdict's obstacle (a wait, a value), keyed by what it lifts; Never: nothing does."""
    e, now_ms = verdict.evidence, situation.now_ms
    if isinstance(e, CapReached):
        return _cap_lift(offer, e, counters, situation)
    if isinstance(e, Suppressed):
        return offer_counter_field(offer.id, DISMISS), WaitUntil(
            suppressed_until_ms(e.suppression, e.last_ms), WaitFor.SUPPRESSION
        )
    if isinstance(e, PolicyReached):
        name = policy_counter_field(e.policy.id)
        times = _as_counted(counters.get(name, ()), e.policy.period, e.count, now_ms)
        at = reopens_ms(e.policy.period, e.policy.max, times, now_ms)
        return _never(verdict) if at is None else (name, WaitUntil(at, WaitFor.CONTACT_POLICY, e.policy.id))
    if isinstance(e, TotalReached):
        at = _total_ends(offer, e, situation)
        subject = f"{e.check.limit} {e.check.counted} in total"
        return _never(verdict) if at is None else (f"total|{offer.id}", WaitUntil(at, WaitFor.TOTAL_CAP, subject))
    if isinstance(e, ContentValueMissing):
        attribute = e.reference.removeprefix("context.")
        value = any_value(declared_type(situation.ruleset, attribute))
        return f"content|{attribute}", SetValue(attribute, None, (Requirement(Op.EXISTS, ""),), value)
    return _never(verdict)  # a verdict without evidence to lift (refused when counted: ask again)


def _never(verdict: Verdict) -> Never:
    return Never(verdict.outcome, _subject(verdict))


def _cap_lift(
    offer: Offer, reached: CapReached, counters: Mapping[str, Times], situation: Situation
) -> tuple[str, Change] | Never:
    """The wait until every cap counting in the reached cap's field has room (each cap's ``Usage.until_ms``, as
    the profile page shows them: the latest of them), or Never when a lifetime cap among them is full."""
    assert situation.controls is not None  # a cap was reached: the decision had the ruleset's controls
    name = offer_counter_field(offer.id, reached.cap.counts)
    times = _as_counted(counters.get(name, ()), reached.cap.period, reached.count, situation.now_ms)
    held = [u for u in situation.controls.cap_usage(offer.id, {name: times}, situation.now_ms)
            if u.field == name and u.reached]  # fmt: skip
    for usage in held:
        if usage.until_ms is None:
            assert isinstance(usage.control, Cap)
            return Never(Outcome.CAPPED, cap_subject(usage.control))
    last = max(held, key=lambda u: u.until_ms or 0)
    assert last.until_ms is not None and isinstance(last.control, Cap)
    return name, WaitUntil(last.until_ms, WaitFor.CAP, cap_subject(last.control))


def _as_counted(times: Times, period: Period, count: int, now_ms: int) -> Times:
    """The times a verdict's ``count`` stands for: those read, plus what the fill of this very decision added
    (its own proposals, counted at ``now_ms``, filled a decision-counted cap or policy the read left room in)."""
    added = count - count_since(times, window_start_ms(period, now_ms))
    return times + (now_ms,) * added if added > 0 else times


def _subject(verdict: Verdict) -> str:
    e = verdict.evidence
    if isinstance(e, CapReached):
        return cap_subject(e.cap)
    if isinstance(e, PolicyReached):
        return e.policy.id
    if isinstance(e, TotalReached):
        return f"{e.check.limit} {e.check.counted} in total"
    if isinstance(e, RefusedOnCount):
        return "refused when counted: a concurrent decision took the last room; ask again"
    return ""


def cap_subject(cap: Cap) -> str:
    """A cap as the answer names it: ``1 decision per profile, rolling 24h``."""
    return f"{cap.max} {cap.counts} per profile, {period_text(cap.period)}"


_ANY: dict[AttrType, ContextValue] = {
    AttrType.NUMBER: 0.0,
    AttrType.BOOL: True,
    AttrType.LIST: (),
    AttrType.STRING: "x",
}


def any_value(declared: AttrType | None) -> ContextValue:
    """Some value of the declared type (a string when undeclared), where only presence matters."""
    return _ANY[declared or AttrType.STRING]


def _total_ends(offer: Offer, reached: TotalReached, situation: Situation) -> int | None:
    """When the total cap's bucket ends (None: a lifetime total), from the cap's period."""
    controls, now_ms = situation.controls, situation.now_ms
    for cap in () if controls is None else controls.total_caps.get(offer.id, ()):
        if cap.counts == reached.check.counted and bucket(cap.period, now_ms) == reached.check.bucket:
            return bucket_end_ms(cap.period, now_ms)
    return None


def _without(totals: TotalsView | None, offer_id: str) -> TotalsView | None:
    if totals is None:
        return None
    return TotalsView(totals.refresh_interval, {k: n for k, n in totals.counts.items() if k[0] != offer_id})


def outrank(offer_id: str, ours: RankKey, theirs: RankKey) -> Outrank:
    """Where ``theirs`` first beats ``ours`` in the rank key (priority, exploring, draw, score, file order)."""
    part = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), len(ours) - 1)
    if part == 0:
        return Outrank(offer_id, RankPart.PRIORITY, -ours[0], -theirs[0])
    if part == 1:
        return Outrank(offer_id, RankPart.EXPLORING, None, None)
    if part == 2:
        return Outrank(offer_id, RankPart.DRAW, -ours[2], -theirs[2])
    if part in (3, 4):
        return Outrank(offer_id, RankPart.SCORE, None if ours[3] else -ours[4], None if theirs[3] else -theirs[4])
    return Outrank(offer_id, RankPart.POSITION, ours[5], theirs[5])
