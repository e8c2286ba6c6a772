"""Why each offer of the requested placements was or was not proposed: the wording of planning's verdicts. Pure.

Planning (decision.core.planning) decides and records, for every offer of
every requested placement, a typed verdict with its evidence; this module only
turns each into an ``Explanation`` (one readable sentence and its fields). It
computes nothing about caps, policies, totals, experiments or ranking.
A decision with ``explain`` false never reaches this module.
"""

from __future__ import annotations

from collections.abc import Iterable

from decision.core.controls import CapReached, PolicyReached, Suppressed, TotalReached, period_text
from decision.core.types import Explanation, Outcome
from decision.core.verdicts import BeatenBy, ContentValueMissing, Elsewhere, HeldOut, InPlaceOf, Shown, Verdict
from decision.rules.reference import AudienceMiss, ConditionFalse, OutsideSchedule
from decision.rules.types import AllOf, Condition, ContextValue, Not, Op, Predicate, Schedule, shown, utc_iso

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
        return f"{shown(p.attribute)} exists"
    return f"{shown(p.attribute)} {_SYMBOLS[p.op]} {_show(p.operand)}"


def condition_text(c: Condition) -> str:
    if isinstance(c, Predicate):
        return predicate_text(c)
    if isinstance(c, Not):
        return f"not ({condition_text(c.child)})"
    joiner = " and " if isinstance(c, AllOf) else " or "
    return "(" + joiner.join(condition_text(child) for child in c.children) + ")"


def _schedule_text(schedule: Schedule) -> str:
    start, end = schedule.start, schedule.end
    if end is None:
        return "always" if start is None else f"from {utc_iso(start)}"
    if start is None:
        return f"until {utc_iso(end)}"
    return f"{utc_iso(start)} to {utc_iso(end)}"


def explanations(verdicts: Iterable[Verdict], now_ms: int) -> tuple[Explanation, ...]:
    """One explanation per verdict, in the verdicts' order (placements in request order, offers by rank)."""
    return tuple(explanation(v, now_ms) for v in verdicts)


def explanation(verdict: Verdict, now_ms: int) -> Explanation:
    e = verdict.evidence
    audience = condition = attribute = beaten_by = experiment_id = ""
    actual: ContextValue | None = None
    limit = count = 0
    if isinstance(e, AudienceMiss):
        audience = ", ".join(e.audiences)
    elif isinstance(e, ConditionFalse):
        condition, attribute, actual = condition_text(e.condition), e.attribute, e.actual
    elif isinstance(e, ContentValueMissing):
        attribute = e.reference
    elif isinstance(e, HeldOut | InPlaceOf):
        experiment_id = e.experiment_id
    elif isinstance(e, CapReached):
        limit, count = e.cap.max, e.count
    elif isinstance(e, Suppressed):
        limit, count = e.suppression.dismissals, e.count
    elif isinstance(e, TotalReached):
        limit, count = e.check.limit, e.count
    elif isinstance(e, PolicyReached):
        limit, count = e.policy.max, e.count
    elif isinstance(e, BeatenBy):
        beaten_by = e.offer_id
    return Explanation(
        verdict.offer_id,
        verdict.placement_id,
        verdict.outcome,
        _reason(verdict, now_ms) if verdict.draw is None else f"{_reason(verdict, now_ms)}; {verdict.draw.text()}",
        verdict.rule,
        audience,
        condition,
        attribute,
        actual,
        beaten_by,
        limit,
        count,
        experiment_id,
    )


def _reason(verdict: Verdict, now_ms: int) -> str:
    e = verdict.evidence
    if isinstance(e, Shown):
        return f"selected (rank {e.position} of {e.of})"
    if isinstance(e, InPlaceOf):
        return (
            f"served as the placement's fallback in place of {e.offer_id!r} (holdout of experiment {e.experiment_id!r})"
        )
    if isinstance(e, OutsideSchedule):
        return f"outside its schedule ({_schedule_text(e.schedule)})"
    if isinstance(e, AudienceMiss):
        if e.part == "none":
            return f"in excluded audience {e.audiences[0]!r}"
        if e.part == "any":
            return f"in none of the audiences {', '.join(e.audiences)}"
        return f"not in audience {e.audiences[0]!r}"
    if isinstance(e, ConditionFalse):
        text = condition_text(e.condition)
        if not e.attribute:
            return f"condition {text} is false"
        actual = "absent" if e.actual is None else _show(e.actual)
        return f"condition {text} is false ({shown(e.attribute)} is {actual})"
    if isinstance(e, ContentValueMissing):
        return f"its content needs {e.reference}, which is missing (on_missing: skip)"
    if isinstance(e, HeldOut):
        whose = "the placement's experiment" if e.placement else "experiment"
        return f"the profile is in the holdout group of {whose} {e.experiment_id!r}"
    if isinstance(e, CapReached):
        return f"capped: {e.count} of {e.cap.max} {e.cap.counts} per profile ({period_text(e.cap.period)})"
    if isinstance(e, Suppressed):
        return f"suppressed: dismissed {e.count} times, the last {(now_ms - e.last_ms) // 1000} s ago"
    if isinstance(e, TotalReached):
        return f"total cap reached: {e.check.limit} {e.check.counted} across all profiles"
    if isinstance(e, PolicyReached):
        policy = e.policy
        return f"contact policy {policy.id!r}: {e.count} of {policy.max} {policy.counts} ({period_text(policy.period)})"
    if isinstance(e, Elsewhere):
        return f"proposed in placement {e.placement_id!r} of this response (no duplicates)"
    if isinstance(e, BeatenBy):
        return f"lost the ranking to {e.offer_id!r} ({e.shown} item(s) shown)"
    return _PLAIN.get(verdict.outcome, verdict.outcome.value)


# Outcomes said without evidence.
_PLAIN = {
    Outcome.FALLBACK: "served as the placement's fallback",
    Outcome.PROFILE_UNAVAILABLE: "the profile could not be read in time: the placement's fallback is served",
    Outcome.CONDITION_FALSE: "not eligible",  # unreachable while the engine agrees with the reference
    # Eligible, not blocked by the counters read, yet not proposed: a decision-counted cap filled
    # between the read and the reservation (a concurrent decision took the last slot).
    Outcome.CAPPED: "capped when the proposal was counted",
}
