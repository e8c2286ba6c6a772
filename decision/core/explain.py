"""Why each offer of the requested placements was or was not proposed. Pure; runs only when asked.

For every offer of every requested placement, in rank order, the first reason
it was not proposed — or that it was. Eligibility reasons come from the plain
reference semantics (decision.rules.reference), which the compiled engine is
held equal to; delivery reasons (caps, suppressions, totals, contact
policies, experiments) from the same counters and controls the decision used.
A decision with ``explain`` false never reaches this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime

from decision.core.controls import DeliveryControls, Times, count_since, period_text
from decision.core.counters import offer_counter_field, policy_counter_field
from decision.core.experiments import assign
from decision.core.periods import window_start_ms
from decision.core.totals import TotalsView, key_of
from decision.core.types import Decision, DecisionRequest, Explanation, Outcome
from decision.rules.reference import condition_holds
from decision.rules.types import (
    DISMISS,
    HOLDOUT,
    AllOf,
    AnyOf,
    CapScope,
    Condition,
    Context,
    EligibilityRule,
    Not,
    Offer,
    Op,
    Predicate,
    Ruleset,
    Schedule,
)

_SYMBOLS = {
    Op.EQ: "==",
    Op.NE: "!=",
    Op.LT: "<",
    Op.LE: "<=",
    Op.GT: ">",
    Op.GE: ">=",
    Op.IN: "in",
    Op.NOT_IN: "not in",
    Op.CONTAINS: "contains",
    Op.STARTS_WITH: "starts with",
    Op.EXISTS: "exists",
}


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def predicate_text(p: Predicate) -> str:
    if p.op is Op.EXISTS:
        return f"context.{p.attribute} exists"
    return f"context.{p.attribute} {_SYMBOLS[p.op]} {_show(p.operand)}"


def condition_text(c: Condition) -> str:
    if isinstance(c, Predicate):
        return predicate_text(c)
    if isinstance(c, Not):
        return f"not ({condition_text(c.child)})"
    joiner = " and " if isinstance(c, AllOf) else " or "
    return "(" + joiner.join(condition_text(child) for child in c.children) + ")"


def false_part(c: Condition, context: Context) -> Condition:
    """The smallest part of a false condition that makes it false: the first false term of an `and`."""
    if isinstance(c, AllOf):
        return false_part(next(child for child in c.children if not condition_holds(child, context)), context)
    if isinstance(c, AnyOf) and len(c.children) == 1:
        return false_part(c.children[0], context)
    return c  # an `or` with every branch false, a `not` whose inside holds, a predicate


def _iso(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _schedule_text(schedule: Schedule) -> str:
    if schedule.end is None:
        return f"from {_iso(schedule.start)}"
    if schedule.start is None:
        return f"until {_iso(schedule.end)}"
    return f"{_iso(schedule.start)} to {_iso(schedule.end)}"


def rule_failure(
    offer: Offer, placement_id: str, rule: EligibilityRule, audiences: AbstractSet[str], context: Context, now: float
) -> Explanation | None:
    """Why ``rule`` does not match, in the order a marketer checks: schedule, audiences, conditions."""
    if not rule.schedule.contains(now):
        reason = f"outside its schedule ({_schedule_text(rule.schedule)})"
        return Explanation(
            outcome=Outcome.OUTSIDE_SCHEDULE,
            reason=reason,
            offer_id=offer.id,
            placement_id=placement_id,
            rule=rule.name,
        )
    missing = [a for a in rule.audiences.all if a not in audiences]
    if missing:
        reason = f"not in audience {missing[0]!r}"
        return Explanation(
            outcome=Outcome.NOT_IN_AUDIENCE,
            reason=reason,
            audience=missing[0],
            offer_id=offer.id,
            placement_id=placement_id,
            rule=rule.name,
        )
    if rule.audiences.any and not any(a in audiences for a in rule.audiences.any):
        names = ", ".join(rule.audiences.any)
        reason = f"in none of the audiences {names}"
        return Explanation(
            outcome=Outcome.NOT_IN_AUDIENCE,
            reason=reason,
            audience=names,
            offer_id=offer.id,
            placement_id=placement_id,
            rule=rule.name,
        )
    excluded = next((a for a in rule.audiences.none if a in audiences), None)
    if excluded is not None:
        reason = f"in excluded audience {excluded!r}"
        return Explanation(
            outcome=Outcome.IN_EXCLUDED_AUDIENCE,
            reason=reason,
            audience=excluded,
            offer_id=offer.id,
            placement_id=placement_id,
            rule=rule.name,
        )
    if rule.condition is not None and not condition_holds(rule.condition, context):
        part = false_part(rule.condition, context)
        text = condition_text(part)
        if isinstance(part, Predicate):
            actual = context.get(part.attribute)
            shown = "absent" if actual is None else _show(actual)
            reason = f"condition {text} is false (context.{part.attribute} is {shown})"
            return Explanation(
                outcome=Outcome.CONDITION_FALSE,
                reason=reason,
                condition=text,
                attribute=part.attribute,
                actual=actual,
                offer_id=offer.id,
                placement_id=placement_id,
                rule=rule.name,
            )
        return Explanation(
            outcome=Outcome.CONDITION_FALSE,
            reason=f"condition {text} is false",
            condition=text,
            offer_id=offer.id,
            placement_id=placement_id,
            rule=rule.name,
        )
    return None


def _delivery_block(
    offer: Offer,
    placement_id: str,
    request: DecisionRequest,
    controls: DeliveryControls,
    counters: Mapping[str, Times],
    totals: TotalsView | None,
    now_ms: int,
) -> Explanation | None:
    for cap in offer.caps:
        if cap.scope is not CapScope.PROFILE:
            continue
        times = counters.get(offer_counter_field(offer.id, cap.counts), ())
        count = count_since(times, window_start_ms(cap.period, now_ms))
        if count >= cap.max:
            reason = f"capped: {count} of {cap.max} {cap.counts} per profile ({period_text(cap.period)})"
            return Explanation(
                outcome=Outcome.CAPPED,
                reason=reason,
                limit=cap.max,
                count=count,
                offer_id=offer.id,
                placement_id=placement_id,
            )
    if offer.suppression is not None:
        rule = offer.suppression
        times = counters.get(offer_counter_field(offer.id, DISMISS), ())
        if times and now_ms < times[-1] + rule.seconds * 1000:
            since = times[-1] - rule.within_seconds * 1000 + 1 if rule.within_seconds else 0
            count = count_since(times, since)
            if count >= rule.dismissals:
                reason = f"suppressed: dismissed {count} times, the last {(now_ms - times[-1]) // 1000} s ago"
                return Explanation(
                    outcome=Outcome.SUPPRESSED,
                    reason=reason,
                    limit=rule.dismissals,
                    count=count,
                    offer_id=offer.id,
                    placement_id=placement_id,
                )
    if totals is not None:
        for check in controls.total_checks(offer.id, None, now_ms):
            if totals.used_up(check):
                count = totals.counts.get(key_of(check), check.limit)
                reason = f"total cap reached: {check.limit} {check.counted} across all profiles"
                return Explanation(
                    outcome=Outcome.TOTAL_CAP_REACHED,
                    reason=reason,
                    limit=check.limit,
                    count=count,
                    offer_id=offer.id,
                    placement_id=placement_id,
                )
    for policy in controls.policies:
        if not policy.covers(request.channel, placement_id):
            continue
        count = count_since(counters.get(policy_counter_field(policy.id), ()), window_start_ms(policy.period, now_ms))
        if count >= policy.max:
            period = period_text(policy.period)
            reason = f"contact policy {policy.id!r}: {count} of {policy.max} {policy.counts} ({period})"
            return Explanation(
                outcome=Outcome.CONTACT_POLICY,
                reason=reason,
                limit=policy.max,
                count=count,
                offer_id=offer.id,
                placement_id=placement_id,
            )
    return None


def explain(
    ruleset: Ruleset,
    request: DecisionRequest,
    decision: Decision,
    *,
    audiences: AbstractSet[str] | None,
    eligible: Mapping[str, str] | None,
    counters: Mapping[str, Times],
    controls: DeliveryControls,
    totals: TotalsView | None,
    now: float,
) -> tuple[Explanation, ...]:
    """One explanation per (requested placement, offer of that placement), placements in request order,
    offers by priority then file order. ``audiences``/``eligible`` None: the profile could not be read."""
    shown: dict[str, str] = {}  # offer -> the placement it is proposed in
    for proposition in decision.propositions:
        for item in proposition.items:
            if not item.fallback and item.variant != HOLDOUT:
                shown.setdefault(item.offer_id, proposition.placement_id)
    inputs = _Inputs(ruleset, request, audiences, eligible, counters, controls, totals, now, int(now * 1000), shown)
    result: list[Explanation] = []
    for proposition in decision.propositions:
        placement = ruleset.placements[proposition.placement_id]
        winners = [item.offer_id for item in proposition.items if not item.fallback]
        offers = sorted(
            (o for o in ruleset.offers.values() if placement.id in o.placements),
            key=lambda o: (-o.priority, o.position),
        )
        for offer in offers:
            result.append(_explain_offer(inputs, offer, placement.id, proposition.fallback, winners))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class _Inputs:
    ruleset: Ruleset
    request: DecisionRequest
    audiences: AbstractSet[str] | None
    eligible: Mapping[str, str] | None
    counters: Mapping[str, Times]
    controls: DeliveryControls
    totals: TotalsView | None
    now: float
    now_ms: int
    shown: Mapping[str, str]


def _explain_offer(
    inputs: _Inputs, offer: Offer, placement_id: str, placement_fell_back: bool, winners: list[str]
) -> Explanation:
    ruleset, request, audiences, eligible = inputs.ruleset, inputs.request, inputs.audiences, inputs.eligible
    is_fallback = ruleset.placements[placement_id].fallback == offer.id
    if offer.id in winners:
        reason = f"selected (rank {winners.index(offer.id) + 1} of {len(winners)})"
        return Explanation(
            outcome=Outcome.SELECTED,
            reason=reason,
            rule=(eligible or {}).get(offer.id, ""),
            offer_id=offer.id,
            placement_id=placement_id,
        )
    if is_fallback and placement_fell_back:
        return Explanation(
            outcome=Outcome.FALLBACK,
            reason="served as the placement's fallback",
            offer_id=offer.id,
            placement_id=placement_id,
        )
    if audiences is None or eligible is None:
        reason = "the profile could not be read in time: the placement's fallback is served"
        return Explanation(
            outcome=Outcome.PROFILE_UNAVAILABLE, reason=reason, offer_id=offer.id, placement_id=placement_id
        )
    matched = eligible.get(offer.id)
    if matched is None:
        for candidate in offer.rules:  # the first rule's failure: with one rule, the only one
            failure = rule_failure(offer, placement_id, candidate, audiences, request.context, inputs.now)
            if failure is not None:
                return failure
        # unreachable while the engine agrees with the reference (the property test)
        return Explanation(offer.id, placement_id, Outcome.CONDITION_FALSE, "not eligible")
    rule: str = matched
    placement = ruleset.placements[placement_id]
    if placement.experiment is not None and assign(placement.experiment, request.profile_id) is None:
        reason = f"the profile is in the holdout group of the placement's experiment {placement.experiment.id!r}"
        return Explanation(
            outcome=Outcome.HOLDOUT,
            reason=reason,
            rule=rule,
            experiment_id=placement.experiment.id,
            offer_id=offer.id,
            placement_id=placement_id,
        )
    if offer.experiment is not None and assign(offer.experiment, request.profile_id) is None:
        reason = f"the profile is in the holdout group of experiment {offer.experiment.id!r}"
        return Explanation(
            outcome=Outcome.HOLDOUT,
            reason=reason,
            rule=rule,
            experiment_id=offer.experiment.id,
            offer_id=offer.id,
            placement_id=placement_id,
        )
    blocked = _delivery_block(
        offer, placement_id, request, inputs.controls, inputs.counters, inputs.totals, inputs.now_ms
    )
    if blocked is not None:
        return blocked
    elsewhere = inputs.shown.get(offer.id)
    if elsewhere is not None and elsewhere != placement_id and not ruleset.allow_duplicates:
        reason = f"proposed in placement {elsewhere!r} of this response (no duplicates)"
        return Explanation(
            outcome=Outcome.PROPOSED_ELSEWHERE, reason=reason, rule=rule, offer_id=offer.id, placement_id=placement_id
        )
    if winners:
        beaten_by = winners[-1]
        reason = f"lost the ranking to {beaten_by!r} ({len(winners)} item(s) shown)"
        return Explanation(
            outcome=Outcome.LOST_RANKING,
            reason=reason,
            rule=rule,
            beaten_by=beaten_by,
            offer_id=offer.id,
            placement_id=placement_id,
        )
    # Eligible, not blocked by the counters read, yet not proposed: a decision-counted cap filled
    # between the read and the reservation (a concurrent decision took the last slot).
    return Explanation(
        outcome=Outcome.CAPPED,
        reason="capped when the proposal was counted",
        rule=rule,
        offer_id=offer.id,
        placement_id=placement_id,
    )
