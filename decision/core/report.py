"""What each offer and experiment variant achieved over a range of days: rates, intervals, tests. Pure.

Built from the outcome counters' rows (``decision.core.outcomes``) and, for the
sample-ratio check, the experiments' weights (from the rulesets). Statistics
from ``decision.core.stats``: Wilson intervals, the two-proportion z-test
(pooled) for p-values, Katz intervals on the rate ratio for lifts, and a
chi-square goodness of fit for sample-ratio mismatch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from decision.core.outcomes import OutcomeRow
from decision.core.stats import Comparison, SampleRatio, sample_ratio, two_proportion, wilson
from decision.rules.types import CLICK, DECISION, DISMISS, HOLDOUT, IMPRESSION, Experiment, HoldoutServes

SRM_ALPHA = 0.001
TEST_NAME = "two-proportion z-test (pooled), two-sided; lift interval: Katz log rate ratio; 95 %"


@dataclass(frozen=True, slots=True)
class Rate:
    """successes / trials with its 95 % Wilson interval (successes above trials are capped: counters of releases
    that counted every replayed event, or conversions of proposals a crashed worker did not flush)."""

    successes: int
    trials: int

    @property
    def value(self) -> float | None:
        return min(self.successes, self.trials) / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(min(self.successes, self.trials), self.trials) if self.trials else None

    def to_json(self) -> dict[str, Any]:
        return {"successes": self.successes, "trials": self.trials, "rate": self.value, "interval": self.interval}


@dataclass(frozen=True, slots=True)
class OfferLine:
    placement_id: str
    offer_id: str
    proposals: int
    impressions: int
    clicks: int
    dismisses: int
    custom: Mapping[str, int]

    @property
    def ctr(self) -> Rate:
        return Rate(self.clicks, self.impressions)

    @property
    def dismiss_rate(self) -> Rate:
        return Rate(self.dismisses, self.impressions)

    def to_json(self) -> dict[str, Any]:
        return {
            "placement": self.placement_id, "offer": self.offer_id, "proposals": self.proposals,
            "impressions": self.impressions, "clicks": self.clicks, "dismisses": self.dismisses,
            "custom": dict(self.custom), "ctr": self.ctr.to_json(), "dismiss_rate": self.dismiss_rate.to_json(),
        }  # fmt: skip


def _comparison_json(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"difference": c.difference, "difference_interval": c.difference_interval, "lift": c.lift,
            "lift_interval": c.lift_interval, "z": c.z, "p_value": c.p_value}  # fmt: skip


@dataclass(frozen=True, slots=True)
class VariantLine:
    variant: str
    conversion: Rate  # conversions / exposures (proposals)
    against_control: Comparison | None  # None for the control itself

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "exposures": self.conversion.trials,
                "conversions": self.conversion.successes, "rate": self.conversion.value,
                "interval": self.conversion.interval, "vs_control": _comparison_json(self.against_control)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExperimentLine:
    experiment_id: str
    metric: str
    variants: tuple[VariantLine, ...]  # the control (first variant) first, the holdout last
    holdout_lift: Comparison | None  # the variants pooled against the holdout
    srm: SampleRatio | None
    srm_groups: tuple[str, ...] = ()  # the groups the sample-ratio check compared
    note: str = ""

    @property
    def mismatch(self) -> bool:
        return self.srm is not None and self.srm.mismatch(SRM_ALPHA)

    def to_json(self) -> dict[str, Any]:
        srm = None
        if self.srm is not None:
            srm = {"chi_square": self.srm.statistic, "df": self.srm.df, "p_value": self.srm.p_value,
                   "groups": list(self.srm_groups), "mismatch": self.mismatch, "alpha": SRM_ALPHA}  # fmt: skip
        return {"experiment": self.experiment_id, "metric": self.metric,
                "variants": [v.to_json() for v in self.variants], "holdout_lift": _comparison_json(self.holdout_lift),
                "sample_ratio": srm, "note": self.note}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    days: tuple[str, ...]
    version: str | None  # None: every ruleset version
    metric: str
    offers: tuple[OfferLine, ...]
    experiments: tuple[ExperimentLine, ...]
    test: str = TEST_NAME
    placements: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"from": self.days[0] if self.days else None, "to": self.days[-1] if self.days else None,
                "ruleset_version": self.version, "metric": self.metric, "test": self.test,
                "offers": [o.to_json() for o in self.offers],
                "experiments": [e.to_json() for e in self.experiments]}  # fmt: skip


def build(
    rows: Iterable[OutcomeRow],
    days: tuple[str, ...],
    *,
    version: str | None = None,
    metric: str = CLICK,
    experiments: Mapping[str, Experiment] | None = None,
) -> Report:
    """The report of ``rows`` (of ``days``; of ``version`` only unless None). ``experiments``: their weights."""
    by_offer: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_variant: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    wanted = set(days)
    for row in rows:
        if row.day not in wanted or (version is not None and row.version != version):
            continue
        by_offer[(row.placement_id, row.offer_id)][row.counted] += row.count
        if row.experiment_id:
            by_variant[row.experiment_id][row.variant][row.counted] += row.count
    offers = tuple(
        OfferLine(placement, offer, c.get(DECISION, 0), c.get(IMPRESSION, 0), c.get(CLICK, 0), c.get(DISMISS, 0),
                  {k: n for k, n in sorted(c.items()) if k not in (DECISION, IMPRESSION, CLICK, DISMISS)})
        for (placement, offer), c in sorted(by_offer.items())
    )  # fmt: skip
    lines = tuple(
        _experiment(eid, groups, metric, (experiments or {}).get(eid)) for eid, groups in sorted(by_variant.items())
    )
    return Report(days, version, metric, offers, lines, placements=tuple(sorted({o.placement_id for o in offers})))


def _experiment(
    experiment_id: str, groups: Mapping[str, Mapping[str, int]], metric: str, definition: Experiment | None
) -> ExperimentLine:
    order = [v.id for v in definition.variants] if definition is not None else sorted(g for g in groups if g != HOLDOUT)
    order += [g for g in sorted(groups) if g not in order and g != HOLDOUT]
    if HOLDOUT in groups or (definition is not None and definition.holdout_weight):
        order.append(HOLDOUT)
    rates = {g: Rate(groups.get(g, {}).get(metric, 0), groups.get(g, {}).get(DECISION, 0)) for g in order}
    control = rates[order[0]] if order and order[0] != HOLDOUT else None
    variants = tuple(
        VariantLine(g, r, None if g == order[0] or control is None else _compare(control, r)) for g, r in rates.items()
    )
    holdout_lift = None
    if HOLDOUT in rates:
        pooled = [r for g, r in rates.items() if g != HOLDOUT]
        treated = Rate(sum(r.successes for r in pooled), sum(r.trials for r in pooled))
        holdout_lift = _compare(rates[HOLDOUT], treated)
    srm: SampleRatio | None = None
    groups_checked: tuple[str, ...] = ()
    note = ""
    if definition is not None:
        weights = {v.id: float(v.weight) for v in definition.variants}
        if definition.holdout_weight and definition.holdout_serves is not HoldoutServes.NOTHING:
            weights[HOLDOUT] = float(definition.holdout_weight)
        elif definition.holdout_weight:
            note = "the holdout serves nothing (no exposures): left out of the sample-ratio check"
        groups_checked = tuple(weights)
        srm = sample_ratio([rates[g].trials if g in rates else 0 for g in weights], list(weights.values()))
    else:
        note = "experiment not found in the rulesets read: no sample-ratio check"
    return ExperimentLine(experiment_id, metric, variants, holdout_lift, srm, groups_checked, note)


def _compare(control: Rate, other: Rate) -> Comparison | None:
    return two_proportion(
        min(control.successes, control.trials), control.trials, min(other.successes, other.trials), other.trials
    )
