"""Rule evaluation alone: our compiled ruleset against GrowthBook's Python SDK on the same targeting rules.

Each offer's eligibility is translated into a GrowthBook condition (its
MongoDB-like targeting language) over the attributes ``audiences`` (a list),
``now`` and the context attributes. Both evaluators are first checked to give
the same eligible offers on every sample, then timed on the same samples.

    python -m loadtest.growthbook_compare --offers 500
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from growthbook.core import evalCondition

from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.types import AllOf, AnyOf, AudienceRule, Condition, EligibilityRule, Not, Op, Predicate, Ruleset
from loadtest.rulegen import CATEGORIES, DEVICES, audience_id, generate

Json = dict[str, Any]

_TYPES = {str: "string", float: "number", bool: "boolean"}


def _typed(operand: object, test: Json) -> Json:
    # Our comparisons never coerce: GrowthBook's $type pins the attribute's type as ours does.
    return {"$type": _TYPES[type(operand)], **test}


def _predicate(p: Predicate) -> Json:
    operand: Any = p.operand
    if p.op is Op.EQ:
        test = _typed(operand, {"$eq": operand})
    elif p.op is Op.NE:
        test = _typed(operand, {"$ne": operand})
    elif p.op in (Op.LT, Op.LE, Op.GT, Op.GE):
        test = {"$type": "number", f"${p.op.value.replace('le', 'lte').replace('ge', 'gte')}": operand}
    elif p.op is Op.IN:
        test = _typed(operand[0], {"$in": list(operand)})
    elif p.op is Op.NOT_IN:
        test = _typed(operand[0], {"$nin": list(operand)})
    elif p.op is Op.EXISTS:
        test = {"$exists": True}
    elif p.op is Op.CONTAINS:
        return {"$or": [{p.attribute: {"$elemMatch": {"$eq": operand}}}, {p.attribute: {"$regex": re.escape(operand)}}]}
    elif p.op is Op.STARTS_WITH:
        test = {"$regex": "^" + re.escape(operand)}
    else:
        raise ValueError(p.op)
    return {p.attribute: test}


def condition(c: Condition) -> Json:
    if isinstance(c, Predicate):
        return _predicate(c)
    if isinstance(c, AllOf):
        return {"$and": [condition(child) for child in c.children]}
    if isinstance(c, AnyOf):
        return {"$or": [condition(child) for child in c.children]}
    if isinstance(c, Not):
        return {"$not": condition(c.child)}
    raise TypeError(c)


def _audiences(rule: AudienceRule) -> list[Json]:
    parts: list[Json] = []
    if rule.all:
        parts.append({"audiences": {"$all": list(rule.all)}})
    if rule.any:
        parts.append({"audiences": {"$elemMatch": {"$in": list(rule.any)}}})
    if rule.none:
        parts.append({"audiences": {"$not": {"$elemMatch": {"$in": list(rule.none)}}}})
    return parts


def eligibility_rule(rule: EligibilityRule) -> Json:
    parts = _audiences(rule.audiences)
    if rule.schedule.start is not None:
        parts.append({"now": {"$gte": rule.schedule.start}})
    if rule.schedule.end is not None:
        parts.append({"now": {"$lt": rule.schedule.end}})
    if rule.condition is not None:
        parts.append(condition(rule.condition))
    return {"$and": parts}


@dataclass(frozen=True, slots=True)
class GrowthBookRules:
    """Offer id -> (rule name, condition) pairs, in file order."""

    offers: tuple[tuple[str, tuple[tuple[str, Json], ...]], ...]

    @classmethod
    def translate(cls, ruleset: Ruleset) -> GrowthBookRules:
        return cls(
            tuple(
                (offer.id, tuple((rule.name, eligibility_rule(rule)) for rule in offer.rules))
                for offer in ruleset.offers.values()
            )
        )

    def eligible(self, attributes: Json) -> dict[str, str]:
        result: dict[str, str] = {}
        for offer_id, rules in self.offers:
            for name, cond in rules:
                if evalCondition(attributes, cond):
                    result[offer_id] = name
                    break
        return result


Sample = tuple[frozenset[str], dict[str, Any], float]


def samples(count: int, audiences: int, per_profile: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    result: list[Sample] = []
    for _ in range(count):
        member_of = frozenset(audience_id(a) for a in rng.sample(range(audiences), per_profile))
        context: dict[str, Any] = {
            "cart_value": float(rng.choice((0, 15, 35, 80, 120, 300))),
            "device": rng.choice(DEVICES),
            "page_path": "/" + rng.choice(CATEGORIES),
            "logged_in": rng.random() < 0.6,
            "visits_30d": float(rng.randrange(12)),
            "cart_categories": tuple(rng.sample(CATEGORIES, 2)),
        }
        result.append((member_of, context, time.time()))
    return result


def best_of(runs: int, evaluate: Callable[[], None]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        evaluate()
        timings.append(time.perf_counter() - started)
    return min(timings)


@dataclass(frozen=True, slots=True)
class Comparison:
    offers: int
    samples: int
    ours_us: float
    growthbook_us: float
    eligible_per_sample: float

    @property
    def ratio(self) -> float:
        return self.ours_us / self.growthbook_us


def compare(
    offers: int = 500, count: int = 2000, audiences: int = 100, per_profile: int = 20, seed: int = 1
) -> Comparison:
    ruleset, problems = parse(generate(offers, audiences, seed).encode(), f"generated-{offers}.yaml")
    if ruleset is None:
        raise RuntimeError("\n".join(map(str, problems)))
    compiled = compile_and_load(ruleset)
    growthbook = GrowthBookRules.translate(ruleset)
    batch = samples(count, audiences, per_profile, seed)
    gb_attributes = [
        {"audiences": sorted(a), "now": now, **{k: list(v) if isinstance(v, tuple) else v for k, v in c.items()}}
        for a, c, now in batch
    ]
    eligible_total = 0
    for (member_of, context, now), attributes in zip(batch, gb_attributes, strict=True):
        ours = compiled.eligible(member_of, context, now)
        theirs = growthbook.eligible(attributes)
        if ours != theirs:
            raise AssertionError(f"the evaluators disagree on {member_of}, {context}: {ours} != {theirs}")
        eligible_total += len(ours)

    def run_ours() -> None:
        for member_of, context, now in batch:
            compiled.eligible(member_of, context, now)

    def run_growthbook() -> None:
        for attributes in gb_attributes:
            growthbook.eligible(attributes)

    ours_us = best_of(3, run_ours) / count * 1e6
    theirs_us = best_of(3, run_growthbook) / count * 1e6
    return Comparison(len(ruleset.offers), count, ours_us, theirs_us, eligible_total / count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offers", type=int, default=500)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    result = compare(args.offers, args.samples)
    print(
        f"{result.offers} offers, {result.samples} samples (same eligible offers from both, "
        f"{result.eligible_per_sample:.1f} per sample): durable_rules {result.ours_us:.0f} µs, "
        f"GrowthBook {result.growthbook_us:.0f} µs per evaluation; ratio {result.ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
