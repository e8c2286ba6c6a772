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
from decision.core.types import (
    Change,
    Explanation,
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


# -- Why not this offer: the wording of decision.core.why_not's answers (never a recomputation) -----------------

_REQUIREMENTS = {
    Op.EQ: "equal to {}",
    Op.NE: "other than {}",
    Op.LT: "below {}",
    Op.LE: "{} or less",
    Op.GT: "above {}",
    Op.GE: "{} or more",
    Op.IN: "one of {}",
    Op.NOT_IN: "none of {}",
    Op.CONTAINS: "containing {}",
    Op.STARTS_WITH: "starting with {}",
    Op.EXISTS: "present",
}
# The negations that read better than "not ...".
_NEGATED = {Op.EQ: Op.NE, Op.IN: Op.NOT_IN}


def requirement_text(r: Requirement) -> str:
    """``above 100``, ``one of ["a", "b"]``, ``absent``, ``not above 100`` (under a ``not``)."""
    if r.holds:
        return _REQUIREMENTS[r.op].format(_show(r.operand))
    if r.op is Op.EXISTS:
        return "absent"
    if r.op in _NEGATED:
        return _REQUIREMENTS[_NEGATED[r.op]].format(_show(r.operand))
    return "not " + _REQUIREMENTS[r.op].format(_show(r.operand))


_WAITS = {
    WaitFor.SCHEDULE: "rule {!r} starts",
    WaitFor.CAP: "the cap of {} has room again",
    WaitFor.SUPPRESSION: "the suppression after dismissals ends",
    WaitFor.TOTAL_CAP: "the period of the total cap of {} ends",
    WaitFor.CONTACT_POLICY: "contact policy {!r} has room again",
}


def change_text(change: Change) -> str:
    """One change in one phrase: ``context.cart_value above 100 (is 80): e.g. 101``."""
    if isinstance(change, SetValue):
        wanted = " and ".join(requirement_text(r) for r in change.requirements)
        actual = "absent" if change.actual is None else _show(change.actual)
        text = f"{shown(change.attribute)} {wanted} (is {actual})"
        if change.value is None:
            return f"{text}: leave it out"
        if all(r.op is Op.EXISTS for r in change.requirements):
            return text
        return f"{text}: e.g. {_show(change.value)}"
    if isinstance(change, JoinAudience):
        if change.any:
            return "the profile joins one of the audiences " + ", ".join(repr(a) for a in change.audiences)
        return f"the profile joins audience {change.audiences[0]!r}"
    if isinstance(change, LeaveAudience):
        return f"the profile leaves audience {change.audience!r}"
    if isinstance(change, WaitUntil):
        return f"wait until {utc_iso(change.at_ms / 1000)} ({_WAITS[change.reason].format(change.subject)})"
    return _outrank_text(change)


def _outrank_text(o: Outrank) -> str:
    last = f"{o.offer_id!r}, the last offer shown"
    if o.part is RankPart.PRIORITY:
        assert o.ours is not None and o.theirs is not None
        return f"a rules change: priority {_show(o.theirs + 1)} or more (is {_show(o.ours)}) to rank above {last}"
    if o.part is RankPart.EXPLORING:
        return (f"a rules change: rank above {last}, still being explored (below its minimum exposure, it goes "
                "first among equal priorities): a higher priority")  # fmt: skip
    if o.part is RankPart.DRAW:
        assert o.ours is not None and o.theirs is not None
        return (f"a rules change: rank above {last}: its Thompson draw {o.theirs:.4f} beat this one's "
                f"{o.ours:.4f} (a higher priority, or better results)")  # fmt: skip
    if o.part is RankPart.SCORE:
        if o.ours is None or o.theirs is None:
            return f"a rules change: rank above {last}, which has a score where this one has none"
        return (f"a rules change: rank above {last}: score {_show(o.theirs)} against {_show(o.ours)} "
                f"({_show(o.theirs - o.ours)} short; a higher score or priority)")  # fmt: skip
    return (f"a rules change: rank above {last}: same priority and score, earlier in the file "
            "(move this offer up, or raise its priority)")  # fmt: skip


def remedy_text(remedy: Remedy) -> str:
    """One way to win: its changes, joined."""
    return "; ".join(change_text(c) for c in remedy.changes) or "nothing to change"


def never_text(never: Never) -> str:
    subject = never.subject
    if never.outcome is Outcome.OUTSIDE_SCHEDULE:
        end = "-" if never.at_ms is None else utc_iso(never.at_ms / 1000)
        if never.after is not None:
            return f"rule {subject!r} ends at {end}, before the offer could win: {change_text(never.after)}"
        return f"rule {subject!r} ended at {end}"
    if never.outcome is Outcome.CONDITION_FALSE:
        return f"no value meets the condition of rule {subject!r}"
    if never.outcome is Outcome.HOLDOUT:
        return f"the profile is in the holdout group of experiment {subject!r} (a hash of the profile: it stays there)"
    if never.outcome is Outcome.CAPPED:
        return f"capped: {subject}" if subject.startswith("refused") else f"the cap of {subject} is reached for good"
    if never.outcome is Outcome.TOTAL_CAP_REACHED:
        return f"the total cap of {subject} is reached for good (a lifetime)"
    if never.outcome is Outcome.CONTACT_POLICY:
        return f"contact policy {subject!r} is used up for good (a lifetime)"
    if never.outcome is Outcome.PROPOSED_ELSEWHERE:
        return (f"it is shown in placement {subject!r} of this response (no duplicates): "
                "ask for this placement first, or alone")  # fmt: skip
    if never.outcome is Outcome.PROFILE_UNAVAILABLE:
        return "the profile could not be read in time: ask again"
    return _PLAIN.get(never.outcome, never.outcome.value)


def why_not_text(answer: WhyNot) -> str:
    """The answer in a few lines: the outcome, then the smallest changes (fewest first), or why none exists."""
    head = f"why not {answer.offer_id!r} in {answer.placement_id!r}: {answer.outcome.value}"
    if answer.shown:
        return f"{head}: it is shown, nothing to change"
    lines = [head]
    if answer.remedies:
        lines.append("  to make it win (each line is enough, fewest changes first):")
        lines.extend(f"  {n}. {remedy_text(r)}" for n, r in enumerate(answer.remedies, 1))
        if answer.never:
            lines.append("  closed ways: " + "; ".join(never_text(n) for n in answer.never))
    else:
        lines.append("  nothing can make it win for this profile: " + "; ".join(never_text(n) for n in answer.never))
    return "\n".join(lines)
