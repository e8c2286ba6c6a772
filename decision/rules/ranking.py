"""Parsing of ``ranking:`` (a placement's learned order; an experiment's ``allocation:`` mapping reads the same,
decision/rules/experiments.py). Part of the loader.

Called by the catalog reader (decision/rules/catalog.py) with its node walker. Every problem is
located (file:line).

    placements: [{..., ranking: {strategy: thompson, metric: click, per: impression, min_exposure: 100, days: 30}}]
"""

from __future__ import annotations

from yaml.nodes import Node

from decision.rules.delivery import counted
from decision.rules.fields import RANKING
from decision.rules.types import DECISION, DISMISS, IMPRESSION, Ranking
from decision.rules.walker import Walker

STRATEGIES = ("thompson",)
PER = (IMPRESSION, DECISION)
MAX_MIN_EXPOSURE = 10_000_000
MAX_DAYS = 90  # outcome counters are kept 90 days by default


def ranking(w: Walker, node: Node, path: str) -> Ranking | None:
    """A ``ranking:`` mapping; None (with problems recorded) when it is invalid."""
    fields = w.mapping(node, path, RANKING.allowed, RANKING.required)
    if fields is None:
        return None
    strategy = (
        w.choice(fields["strategy"], f"{path}.strategy", STRATEGIES, "strategy") if "strategy" in fields else None
    )
    defaults = Ranking()
    metric = counted(w, fields["metric"], f"{path}.metric") if "metric" in fields else defaults.metric
    if metric == DECISION:
        w.error(fields["metric"], f"{path}.metric", "a success is an event (click, impression, custom:...)")
        metric = None
    per = counted(w, fields["per"], f"{path}.per") if "per" in fields else defaults.per
    if per is not None and per not in PER:
        w.error(fields["per"], f"{path}.per", "trials are impressions or decisions (proposals)")
        per = None
    if metric is not None and metric == per:
        w.error(fields["metric"], f"{path}.metric", f"the same as per ({per}): every trial would be a success")
        metric = None
    if metric == DISMISS:
        w.error(fields["metric"], f"{path}.metric", "dismissals are failures: learning would favour the worst offer")
        metric = None
    min_exposure = defaults.min_exposure
    if "min_exposure" in fields:
        min_exposure = w.integer(fields["min_exposure"], f"{path}.min_exposure", 0, MAX_MIN_EXPOSURE) or 0
    days = defaults.days
    if "days" in fields:
        days = w.integer(fields["days"], f"{path}.days", 1, MAX_DAYS) or 0
    if strategy is None or metric is None or per is None or days == 0:
        return None
    return Ranking(metric, per, min_exposure, days, strategy)
