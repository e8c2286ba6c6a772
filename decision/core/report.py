"""What each offer and experiment variant achieved over a range of days: rates, intervals, tests. Pure.

Built from the outcome counters' rows (``decision.core.outcomes``) and, for the
sample-ratio check, the experiments' weights (from the rulesets). Statistics
from ``decision.core.stats``: Wilson intervals, the two-proportion z-test
(pooled) for p-values, Katz intervals on the rate ratio for lifts, and a
chi-square goodness of fit for sample-ratio mismatch — all fixed-horizon:
valid for one look, planned in advance. Beside them, for every variant
against the control, always-valid confidence sequences (valid however often
one looks: ``stats.sequential_two_proportion``), day by day cumulatively, and
the "can we stop?" verdict, which reads only those (``STOP_RULE``).

An experiment's figures, looks and verdict are cumulative from its **first counted day** (the earliest day of
the rows given: read them over the counters' whole retention), up to the report's last day, whatever its first:
a start chosen after seeing the data would break the sequences' guarantee. The offers' figures are of the
report's days only.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from decision.core.allocation import Allocation
from decision.core.outcomes import OutcomeRow
from decision.core.stats import (
    ALPHA,
    DEFAULT_TUNING,
    SEQUENTIAL_NAME,
    AlwaysValid,
    Comparison,
    SampleRatio,
    SequentialComparison,
    sample_ratio,
    sequential_two_proportion,
    two_proportion,
    wilson,
)
from decision.rules.patterns import ID_PATTERN
from decision.rules.types import (
    CLICK,
    CUSTOM_PREFIX,
    DECISION,
    DISMISS,
    HOLDOUT,
    IMPRESSION,
    Experiment,
    HoldoutServes,
    Ruleset,
)
from decision.rules.types import Allocation as VariantAllocation

SRM_ALPHA = 0.001
MAX_DAYS = 400  # in one report
TEST_NAME = "two-proportion z-test (pooled), two-sided; lift interval: Katz log rate ratio; 95 %"
DEFAULT_MIN_LIFT = 0.05  # a relative lift smaller than this is no difference worth having (--min-lift)
MIN_EXPOSURES = 100  # per group, before any verdict: the sequences are asymptotic
STOP_RULE = (
    "stop when, for every variant against the control, the always-valid interval of the lift excludes 0 (better "
    "or worse) or lies within ±{min_lift:.0%} (no difference worth having), each group having {minimum} exposures "
    "and a conversion; with k variants each interval at level 1 - 0.05/k (Bonferroni); never on the fixed-horizon "
    "p-value; a sample ratio mismatch stops nothing (check the assignment first); the sequences are cumulative "
    "from the experiment's first counted day, whatever the report's first day"
)
# allocation: auto moves the variants' shares on purpose: only the holdout keeps a weight to check.
AUTO_CHECK = "allocation: auto: the variants' shares follow Thompson sampling, not their weights: only the holdout's "
AUTO_BIAS = (
    "adaptive allocation biases the pooled rates (the days a variant got more traffic weigh more in its rate, and "
    "a variant unlucky early is shown less and corrected less): read its lifts, intervals and verdict as a guide, "
    "not a guarantee"
)


class Stop(StrEnum):
    """The "can we stop?" verdict of one variant against the control (or of the experiment)."""

    CONTINUE = "continue"  # the interval still straddles 0 and a lift worth having, or too little data
    BETTER = "better"  # the lift's always-valid interval lies above 0
    WORSE = "worse"  # ... below 0
    SAME = "same"  # ... within ±min_lift: no difference worth having
    CHECK = "check"  # a sample ratio mismatch: no verdict until the assignment is explained


def stop_verdict(comparison: SequentialComparison | None, control: Rate, other: Rate, min_lift: float) -> Stop:
    """The rule (``STOP_RULE``) for one variant: on the always-valid interval of the lift only."""
    lift = None if comparison is None else comparison.lift
    enough = all(r.trials >= MIN_EXPOSURES and r.successes > 0 for r in (control, other))
    if lift is None or not enough:
        return Stop.CONTINUE
    low, high = lift.interval
    if low > 0:
        return Stop.BETTER
    if high < 0:
        return Stop.WORSE
    if -min_lift <= low and high <= min_lift:
        return Stop.SAME
    return Stop.CONTINUE


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


def _always_valid_json(a: AlwaysValid | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"estimate": a.estimate, "interval": a.interval, "p_value": a.p_value, "std_error": a.std_error}


def _sequential_json(c: SequentialComparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"difference": _always_valid_json(c.difference), "lift": _always_valid_json(c.lift), "alpha": c.alpha,
            "tuning": c.tuning}  # fmt: skip


@dataclass(frozen=True, slots=True)
class VariantLine:
    variant: str
    conversion: Rate  # conversions / exposures (proposals)
    against_control: Comparison | None  # None for the control itself
    sequential: SequentialComparison | None = None  # always-valid, against the control (None: the control, holdout)
    stop: Stop | None = None  # the "can we stop?" verdict of this variant (None: the control, the holdout)

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "exposures": self.conversion.trials,
                "conversions": self.conversion.successes, "rate": self.conversion.value,
                "interval": self.conversion.interval, "vs_control": _comparison_json(self.against_control),
                "sequential": _sequential_json(self.sequential),
                "stop": None if self.stop is None else self.stop.value}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Look:
    """The experiment as it stood at the end of one day (cumulative from its first counted day)."""

    day: str
    variants: tuple[VariantLine, ...]  # as in ExperimentLine, counted up to this day

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day, "variants": [v.to_json() for v in self.variants]}


@dataclass(frozen=True, slots=True)
class ExperimentLine:
    experiment_id: str
    metric: str
    variants: tuple[VariantLine, ...]  # the control (first variant) first, the holdout last
    holdout_lift: Comparison | None  # the variants pooled against the holdout
    srm: SampleRatio | None
    srm_groups: tuple[str, ...] = ()  # the groups the sample-ratio check compared
    note: str = ""
    looks: tuple[Look, ...] = ()  # day by day, cumulative: what someone looking each day saw
    holdout_sequential: SequentialComparison | None = None  # the variants pooled against the holdout, always-valid
    since: str = ""  # the experiment's first counted day: everything above is cumulative from it

    @property
    def mismatch(self) -> bool:
        return self.srm is not None and self.srm.mismatch(SRM_ALPHA)

    @property
    def stop(self) -> Stop:
        """The experiment's verdict: check (mismatch), continue (a variant undecided), or every variant decided —
        then the best of them (better, else same, else worse)."""
        verdicts = [v.stop for v in self.variants if v.stop is not None]
        if self.mismatch:
            return Stop.CHECK
        if not verdicts or Stop.CONTINUE in verdicts:
            return Stop.CONTINUE
        return next(s for s in (Stop.BETTER, Stop.SAME, Stop.WORSE) if s in verdicts)

    def to_json(self) -> dict[str, Any]:
        srm = None
        if self.srm is not None:
            srm = {"chi_square": self.srm.statistic, "df": self.srm.df, "p_value": self.srm.p_value,
                   "groups": list(self.srm_groups), "mismatch": self.mismatch, "alpha": SRM_ALPHA}  # fmt: skip
        return {"experiment": self.experiment_id, "since": self.since, "metric": self.metric,
                "variants": [v.to_json() for v in self.variants], "holdout_lift": _comparison_json(self.holdout_lift),
                "holdout_sequential": _sequential_json(self.holdout_sequential),
                "sample_ratio": srm, "note": self.note, "stop": self.stop.value,
                "looks": [look.to_json() for look in self.looks]}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    days: tuple[str, ...]
    version: str | None  # None: every ruleset version
    metric: str
    offers: tuple[OfferLine, ...]
    experiments: tuple[ExperimentLine, ...]
    test: str = TEST_NAME
    placements: tuple[str, ...] = field(default=())
    tuning: float = DEFAULT_TUNING
    min_lift: float = DEFAULT_MIN_LIFT
    # The Thompson placements' and auto experiments' current allocation (decision.core.allocation).
    allocations: tuple[Allocation, ...] = ()

    @property
    def sequential(self) -> str:
        """The always-valid method, named."""
        return SEQUENTIAL_NAME.format(tuning=self.tuning)

    @property
    def stop_rule(self) -> str:
        return STOP_RULE.format(min_lift=self.min_lift, minimum=MIN_EXPOSURES)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.days[0] if self.days else None, "to": self.days[-1] if self.days else None,
                "ruleset_version": self.version, "metric": self.metric, "test": self.test,
                "sequential": self.sequential, "stop_rule": self.stop_rule, "min_lift": self.min_lift,
                "tuning": self.tuning, "offers": [o.to_json() for o in self.offers],
                "experiments": [e.to_json() for e in self.experiments],
                "allocations": [a.to_json() for a in self.allocations]}  # fmt: skip


def build(
    rows: Iterable[OutcomeRow],
    days: tuple[str, ...],
    *,
    version: str | None = None,
    metric: str = CLICK,
    experiments: Mapping[str, Experiment] | None = None,
    tuning: float = DEFAULT_TUNING,
    min_lift: float = DEFAULT_MIN_LIFT,
) -> Report:
    """The report of ``rows`` (of ``version`` only unless None): the offers over ``days``; the experiments counted
    in ``days``, each from its first counted day among ``rows`` (earlier days than ``days`` included: give the
    rows of every day kept) to the last of ``days``. ``experiments``: their weights. ``tuning``: where the
    confidence sequences are narrowest (exposures); ``min_lift``: of the stop rule."""
    by_offer: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_day: dict[str, dict[str, _Groups]] = defaultdict(lambda: defaultdict(_groups))
    wanted, last = set(days), max(days, default="")
    for row in rows:
        if row.day > last or (version is not None and row.version != version):
            continue
        if row.day in wanted:
            by_offer[(row.placement_id, row.offer_id)][row.counted] += row.count
        if row.experiment_id:
            by_day[row.experiment_id][row.day][row.variant][row.counted] += row.count
    offers = tuple(
        OfferLine(placement, offer, c.get(DECISION, 0), c.get(IMPRESSION, 0), c.get(CLICK, 0), c.get(DISMISS, 0),
                  {k: n for k, n in sorted(c.items()) if k not in (DECISION, IMPRESSION, CLICK, DISMISS)})
        for (placement, offer), c in sorted(by_offer.items())
    )  # fmt: skip
    options = _Options(metric, tuning, min_lift)
    lines = tuple(
        _experiment(eid, daily, every_day(min(daily), last), options, (experiments or {}).get(eid))
        for eid, daily in sorted(by_day.items())
        if wanted.intersection(daily)  # counted in the days asked
    )
    return Report(days, version, metric, offers, lines, placements=tuple(sorted({o.placement_id for o in offers})),
                  tuning=tuning, min_lift=min_lift)  # fmt: skip


_Groups = dict[str, dict[str, int]]  # variant -> counted -> count


def _groups() -> _Groups:
    return defaultdict(lambda: defaultdict(int))


@dataclass(frozen=True, slots=True)
class _Options:
    metric: str
    tuning: float
    min_lift: float


def _experiment(
    experiment_id: str,
    daily: Mapping[str, _Groups],
    days: tuple[str, ...],
    options: _Options,
    definition: Experiment | None,
) -> ExperimentLine:
    """The experiment over all the days (from its first counted day), and as it stood at the end of each."""
    looks: list[Look] = []
    cumulative = _groups()
    for day in days:
        for group, counts in daily.get(day, {}).items():
            for counted, count in counts.items():
                cumulative[group][counted] += count
        if day in daily or looks:
            looks.append(Look(day, _variants(_order(cumulative, definition), cumulative, options)[0]))
    line = _whole(experiment_id, cumulative, options, definition)
    return dataclasses.replace(line, looks=tuple(looks), since=days[0])


def _order(groups: Mapping[str, object], definition: Experiment | None) -> list[str]:
    """The control (first variant) first, the other variants, the holdout last."""
    order = [v.id for v in definition.variants] if definition is not None else sorted(g for g in groups if g != HOLDOUT)
    order += [g for g in sorted(groups) if g not in order and g != HOLDOUT]
    if HOLDOUT in groups or (definition is not None and definition.holdout_weight):
        order.append(HOLDOUT)
    return order


def _variants(
    order: list[str], groups: Mapping[str, Mapping[str, int]], options: _Options
) -> tuple[tuple[VariantLine, ...], dict[str, Rate]]:
    rates = {g: Rate(groups.get(g, {}).get(options.metric, 0), groups.get(g, {}).get(DECISION, 0)) for g in order}
    control = rates[order[0]] if order and order[0] != HOLDOUT else None
    compared = [g for g in order[1:] if g != HOLDOUT]
    alpha = ALPHA / max(len(compared), 1)  # Bonferroni over the variants compared with the control
    lines = []
    for group, rate in rates.items():
        if control is None or group not in compared:
            lines.append(VariantLine(group, rate, None if group == order[0] or control is None else
                                     _compare(control, rate)))  # fmt: skip
            continue
        sequential = _sequential(control, rate, alpha, options.tuning)
        lines.append(VariantLine(group, rate, _compare(control, rate), sequential,
                                 stop_verdict(sequential, control, rate, options.min_lift)))  # fmt: skip
    return tuple(lines), rates


def _whole(
    experiment_id: str, groups: Mapping[str, Mapping[str, int]], options: _Options, definition: Experiment | None
) -> ExperimentLine:
    order = _order(groups, definition)
    variants, rates = _variants(order, groups, options)
    metric = options.metric
    holdout_lift = holdout_sequential = None
    if HOLDOUT in rates:
        pooled = [r for g, r in rates.items() if g != HOLDOUT]
        treated = Rate(sum(r.successes for r in pooled), sum(r.trials for r in pooled))
        holdout_lift = _compare(rates[HOLDOUT], treated)
        holdout_sequential = _sequential(rates[HOLDOUT], treated, ALPHA, options.tuning)
    srm: SampleRatio | None = None
    groups_checked: tuple[str, ...] = ()
    note = ""
    if definition is not None and definition.allocation is VariantAllocation.AUTO:
        srm, groups_checked, note = _auto_sample_ratio(definition, rates)
    elif definition is not None:
        weights = {v.id: float(v.weight) for v in definition.variants}
        if definition.holdout_weight and definition.holdout_serves is not HoldoutServes.NOTHING:
            weights[HOLDOUT] = float(definition.holdout_weight)
        elif definition.holdout_weight:
            note = "the holdout serves nothing (no exposures): left out of the sample-ratio check"
        groups_checked = tuple(weights)
        srm = sample_ratio([rates[g].trials if g in rates else 0 for g in weights], list(weights.values()))
    else:
        note = "experiment not found in the rulesets read: no sample-ratio check"
    return ExperimentLine(experiment_id, metric, variants, holdout_lift, srm, groups_checked, note,
                          holdout_sequential=holdout_sequential)  # fmt: skip


def _auto_sample_ratio(
    definition: Experiment, rates: Mapping[str, Rate]
) -> tuple[SampleRatio | None, tuple[str, ...], str]:
    """An ``allocation: auto`` experiment: the holdout's exposures against the variants' pooled, by their weights
    (Thompson sampling moves the variants' shares by design; the holdout stays by weight)."""
    if not definition.holdout_weight or definition.holdout_serves is HoldoutServes.NOTHING:
        return None, (), (f"{AUTO_CHECK}share could be checked, and there is no holdout with exposures: no "
                          f"sample-ratio check; {AUTO_BIAS}")  # fmt: skip
    variants = [v.id for v in definition.variants]
    pooled = sum(rates[v].trials for v in variants if v in rates)
    held = rates[HOLDOUT].trials if HOLDOUT in rates else 0
    srm = sample_ratio(
        [held, pooled], [float(definition.holdout_weight), float(sum(v.weight for v in definition.variants))]
    )
    note = f"{AUTO_CHECK}share is checked, against the variants pooled; {AUTO_BIAS}"
    return srm, (HOLDOUT, "+".join(variants)), note


def _sequential(control: Rate, other: Rate, alpha: float, tuning: float) -> SequentialComparison | None:
    return sequential_two_proportion(
        min(control.successes, control.trials), control.trials, min(other.successes, other.trials), other.trials,
        alpha=alpha, tuning=tuning,
    )  # fmt: skip


def _compare(control: Rate, other: Rate) -> Comparison | None:
    return two_proportion(
        min(control.successes, control.trials), control.trials, min(other.successes, other.trials), other.trials
    )


# -- what a report is asked for (``decision report``'s options, the console's form) ---------------------------


def every_day(first: str, last: str) -> tuple[str, ...]:
    """Every day from ``first`` to ``last`` (ISO dates, included; none when ``last`` comes first)."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return tuple((start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1))


def days_between(first: str, last: str, names: tuple[str, str] = ("--from", "--to")) -> tuple[str, ...]:
    """Every day from ``first`` to ``last`` (ISO dates, included). ValueError naming the option (``names``)."""
    try:
        start = date.fromisoformat(first)
    except ValueError:
        raise ValueError(f"{names[0]}: {first!r} is not a date (YYYY-MM-DD)") from None
    try:
        end = date.fromisoformat(last)
    except ValueError:
        raise ValueError(f"{names[1]}: {last!r} is not a date (YYYY-MM-DD)") from None
    if end < start:
        raise ValueError(f"{names[1]}: {last} is before {names[0]} {first}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"{names[1]}: at most {MAX_DAYS} days in one report")
    return every_day(first, last)


def metric_of(text: str, name: str = "--metric") -> str:
    """The outcome counted as the experiments' conversion: click, impression, dismiss or ``custom:<type>``."""
    if text in ("click", "impression", "dismiss"):
        return text
    custom = text.removeprefix(CUSTOM_PREFIX)
    if not ID_PATTERN.fullmatch(custom):
        raise ValueError(f"{name}: {text!r} is neither click, impression, dismiss nor a custom event type")
    return CUSTOM_PREFIX + custom


def experiments_of(rulesets: Sequence[Ruleset]) -> dict[str, Experiment]:
    """Experiment id -> its definition; a later ruleset's wins."""
    found: dict[str, Experiment] = {}
    for ruleset in rulesets:
        for experiment in (
            *(p.experiment for p in ruleset.placements.values()),
            *(o.experiment for o in ruleset.offers.values()),
        ):
            if experiment is not None:
                found[experiment.id] = experiment
    return found
