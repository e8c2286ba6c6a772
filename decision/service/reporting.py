"""What ``decision report`` and the console's Offers page show: the outcome counters of some days (the
experiments' from their first counted day), read from Redis, turned into the report (decision.core.report) with
the current Thompson allocation of the active ruleset (decision.core.allocation) from the counts the servers read
for it now (decision.service.learning ``wanted``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from decision.core.allocation import current
from decision.core.learning import Rates
from decision.core.outcomes import OutcomeRow
from decision.core.report import DEFAULT_MIN_LIFT, Report, build, experiments_of
from decision.core.stats import DEFAULT_TUNING
from decision.rules.loader import parse
from decision.rules.types import CLICK, Ruleset
from decision.service.learning import wanted
from decision.store.control import ControlStore
from decision.store.outcomes import scan_outcomes


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """The days (ISO dates, in the ruleset's time zone), and how to read them."""

    days: tuple[str, ...]
    version: str | None = None  # only what this ruleset version proposed (None: all)
    metric: str = CLICK  # the experiments' conversion
    tuning: float = DEFAULT_TUNING
    min_lift: float = DEFAULT_MIN_LIFT


async def read_report(control: ControlStore, request: ReportRequest, given: Sequence[Ruleset] = ()) -> Report:
    """The report of ``request``'s days. ``given``: rulesets for the experiments' weights, the last the active one
    for the allocation (default: the published rulesets, of ``request.version`` when set, and the active one)."""
    return _report(await _gather(control, request, list(given)), request, request.days, allocation=True)


async def read_report_by_day(control: ControlStore, request: ReportRequest) -> tuple[Report, tuple[Report, ...]]:
    """The report of the days together (with the allocation), and of each day alone (the same ``build``)."""
    gathered = await _gather(control, request, [])
    whole = _report(gathered, request, request.days, allocation=True)
    return whole, tuple(_report(gathered, request, (day,), allocation=False) for day in request.days)


_Gathered = tuple[list[OutcomeRow], list[Ruleset], Ruleset | None, Rates]


def _report(gathered: _Gathered, request: ReportRequest, days: tuple[str, ...], *, allocation: bool) -> Report:
    rows, rulesets, active, rates = gathered
    report = build(rows, days, version=request.version, metric=request.metric, experiments=experiments_of(rulesets),
                   tuning=request.tuning, min_lift=request.min_lift)  # fmt: skip
    if not allocation or active is None:
        return report
    return dataclasses.replace(report, allocations=current(active, rates))


async def _gather(control: ControlStore, request: ReportRequest, rulesets: list[Ruleset]) -> _Gathered:
    """The rows of every day kept (the experiments count from their first counted day, decision.core.report), the
    rulesets (experiments' weights) and, for the allocation, the counts the servers read for the active ruleset
    now."""
    keys = control.keys
    rows = await scan_outcomes(control.client, keys, None)
    active = rulesets[-1] if rulesets else None
    if not rulesets:
        pointer = await control.active()
        for entry in await control.versions():
            chosen = request.version is None or entry.version == request.version
            serving = pointer is not None and pointer.version == entry.version
            if chosen or serving:
                ruleset, _ = parse(entry.text.encode(), entry.source or entry.version)
                if ruleset is not None and chosen:
                    rulesets.append(ruleset)
                active = ruleset if serving else active
    learned: list[OutcomeRow] = []
    if active is not None:
        needed = wanted(active, time.time())
        if needed:
            read = await scan_outcomes(control.client, keys, {day for _, day in needed})
            learned = [row for row in read if (row.offer_id, row.day) in needed]
    return rows, rulesets, active, Rates.of(learned)
