"""Warnings about a valid ruleset (``decision validate``): things that are allowed but likely wrong.

* an audience the ruleset names that the audience registry does not know
  (checked when a registry is given: ``--redis-url``);
* an eligibility rule whose schedule has ended (the offer, when all have);
* offers of one placement with equal priority whose eligibility can hold for
  the same request: the one written first always wins the tie (unless the
  placement orders them otherwise: a score formula, a learned ranking).

The overlap check is conservative: two rules overlap unless their schedules,
audiences or top-level conditions plainly contradict (disjoint time ranges,
an audience required by one and excluded by the other, ``eq 1`` against
``gt 5`` ...); conditions under ``or``/``not`` are assumed satisfiable.
Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet

from decision.rules.errors import Problem, Severity
from decision.rules.suggest import did_you_mean
from decision.rules.types import (
    AllOf,
    Condition,
    EligibilityRule,
    Offer,
    Op,
    Placement,
    Predicate,
    Ruleset,
    Scalar,
    Schedule,
    utc_iso,
)


def lint(ruleset: Ruleset, *, now: float, known_audiences: AbstractSet[str] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    if known_audiences is not None:
        problems.extend(unknown_audiences(ruleset, known_audiences))
    problems.extend(ended_schedules(ruleset, now))
    problems.extend(equal_priority_overlaps(ruleset, now))
    return problems


def _warning(rule_or_offer: EligibilityRule | Offer, field: str, reason: str) -> Problem:
    return Problem(rule_or_offer.location, field, reason, Severity.WARNING)


def unknown_audiences(ruleset: Ruleset, known: AbstractSet[str]) -> Iterator[Problem]:
    for offer in ruleset.offers.values():
        for rule in offer.rules:
            missing = sorted({a for a in rule.audiences.referenced() if a not in known})
            for audience in missing:
                yield _warning(
                    rule,
                    f"offers[{offer.id}].eligibility[{rule.name}].audiences",
                    f"audience {audience!r} is not in the audience registry (a typo, or not synced yet)"
                    + did_you_mean(audience, known),
                )


def ended_schedules(ruleset: Ruleset, now: float) -> Iterator[Problem]:
    for offer in ruleset.offers.values():
        ended = [r for r in offer.rules if r.schedule.end is not None and r.schedule.end <= now]
        if not ended:
            continue
        if len(ended) == len(offer.rules):
            last = max(r.schedule.end for r in ended if r.schedule.end is not None)
            yield _warning(
                offer,
                f"offers[{offer.id}].eligibility",
                f"its schedule ended at {utc_iso(last)}: the offer can no longer be selected",
            )
            continue
        for rule in ended:
            assert rule.schedule.end is not None
            yield _warning(
                rule,
                f"offers[{offer.id}].eligibility[{rule.name}].schedule.end",
                f"ended at {utc_iso(rule.schedule.end)}: this rule no longer matches",
            )


def equal_priority_overlaps(ruleset: Ruleset, now: float) -> Iterator[Problem]:
    """One warning per pair of offers (on the later one), naming the placements they share."""
    offers = list(ruleset.offers.values())
    for first, second in itertools.combinations(offers, 2):
        if first.priority != second.priority:
            continue
        # A placement with a score formula or a learned ranking breaks ties by score or draw, not by file order.
        shared = [p for p in first.placements if p in second.placements and _static(ruleset.placements.get(p))]
        if not shared:
            continue
        if not any(rules_may_overlap(a, b, now) for a in first.rules for b in second.rules):
            continue
        places = ", ".join(repr(p) for p in shared)
        yield _warning(
            second,
            f"offers[{second.id}].priority",
            f"same priority ({first.priority}) as offer {first.id!r} on placement {places}, and both can be "
            f"eligible for the same request: {first.id!r} always wins the tie (written first)",
        )


def _static(placement: Placement | None) -> bool:
    """Offers of equal priority keep their file order: no score formula, no learned ranking (decision.core.verdicts
    rank_key: a Thompson draw comes first, then the score, then the file)."""
    return placement is not None and placement.score is None and placement.ranking is None


# -- can two eligibility rules hold at once? --------------------------------


def rules_may_overlap(a: EligibilityRule, b: EligibilityRule, now: float) -> bool:
    return (
        _schedules_meet(a.schedule, b.schedule, now)
        and _audiences_compatible(a, b)
        and _conditions_compatible(_required(a.condition), _required(b.condition))
    )


def _schedules_meet(a: Schedule, b: Schedule, now: float) -> bool:
    start = max(a.start or -math.inf, b.start or -math.inf, now)
    end = min(a.end if a.end is not None else math.inf, b.end if b.end is not None else math.inf)
    return start < end


def _audiences_compatible(a: EligibilityRule, b: EligibilityRule) -> bool:
    required = set(a.audiences.all) | set(b.audiences.all)
    excluded = set(a.audiences.none) | set(b.audiences.none)
    if required & excluded:
        return False
    return all(not rule.audiences.any or not set(rule.audiences.any) <= excluded for rule in (a, b))


def _required(condition: Condition | None) -> list[Predicate]:
    """The predicates a condition needs to hold (its top-level conjunction)."""
    if condition is None:
        return []
    if isinstance(condition, Predicate):
        return [condition]
    if isinstance(condition, AllOf):
        return [p for child in condition.children for p in _required(child)]
    return []  # or / not: assumed satisfiable


def _conditions_compatible(a: Iterable[Predicate], b: Iterable[Predicate]) -> bool:
    by_attribute: dict[str, list[Predicate]] = {}
    for predicate in itertools.chain(a, b):
        by_attribute.setdefault(predicate.attribute, []).append(predicate)
    return all(_satisfiable(predicates) for predicates in by_attribute.values())


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def _satisfiable(predicates: list[Predicate]) -> bool:
    """Whether one attribute value can meet every predicate (False only when it plainly cannot)."""
    kinds: set[str] = set()
    allowed: set[tuple[str, Scalar]] | None = None  # from eq / in
    excluded: set[tuple[str, Scalar]] = set()  # from ne / not_in
    low, low_strict, high, high_strict = -math.inf, False, math.inf, False
    prefixes: list[str] = []
    for p in predicates:
        operand = p.operand
        if p.op in (Op.EXISTS, Op.CONTAINS):
            continue
        if p.op in (Op.EQ, Op.IN):
            values = operand if isinstance(operand, tuple) else (operand,)
            options = {(_kind(v), v) for v in values}
            allowed = options if allowed is None else allowed & options
            kinds.add("|".join(sorted({k for k, _ in options})))
        elif p.op in (Op.NE, Op.NOT_IN):
            values = operand if isinstance(operand, tuple) else (operand,)
            excluded.update((_kind(v), v) for v in values)
            if p.op is Op.NE and not isinstance(operand, tuple):
                kinds.add(_kind(operand))
        elif p.op in (Op.LT, Op.LE, Op.GT, Op.GE) and isinstance(operand, float):
            kinds.add("number")
            if p.op in (Op.GT, Op.GE) and (operand > low or (operand == low and p.op is Op.GT)):
                low, low_strict = operand, p.op is Op.GT
            if p.op in (Op.LT, Op.LE) and (operand < high or (operand == high and p.op is Op.LT)):
                high, high_strict = operand, p.op is Op.LT
        elif p.op is Op.STARTS_WITH and isinstance(operand, str):
            kinds.add("string")
            prefixes.append(operand)
    single_kinds = {k for k in kinds if "|" not in k}
    if len(single_kinds) > 1:
        return False
    if low > high or (low == high and (low_strict or high_strict)):
        return False
    if not all(x.startswith(y) or y.startswith(x) for x, y in itertools.combinations(prefixes, 2)):
        return False
    if allowed is None:
        return True

    def fits(kind: str, value: Scalar) -> bool:
        if (kind, value) in excluded or (single_kinds and kind not in single_kinds):
            return False
        if isinstance(value, float) and not isinstance(value, bool):
            below = value < high or (value == high and not high_strict)
            above = value > low or (value == low and not low_strict)
            return below and above
        if isinstance(value, str):
            return all(value.startswith(prefix) for prefix in prefixes)
        return not prefixes and low == -math.inf and high == math.inf

    return any(fits(kind, value) for kind, value in allowed)
