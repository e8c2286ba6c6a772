"""Parsing of ``ranking:`` (a placement's learned order) and ``allocation:`` (an experiment's). Part of the loader.

Called by the catalog reader (decision/rules/catalog.py) with its node walker. Every problem is
located (file:line).

    placements: [{..., ranking: {strategy: thompson, metric: click, per: impression, min_exposure: 100, days: 30}}]
    experiment: {..., allocation: auto}   # or a mapping like ranking's
"""

from __future__ import annotations

from dataclasses import replace

from yaml.nodes import MappingNode, Node, ScalarNode

from decision.rules import delivery
from decision.rules.delivery import counted
from decision.rules.fields import RANKING
from decision.rules.types import DECISION, DISMISS, IMPRESSION, Allocation, Experiment, Ranking
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
    strategy = w.string(fields["strategy"], f"{path}.strategy") if "strategy" in fields else None
    if strategy is not None and strategy not in STRATEGIES:
        w.error(fields["strategy"], f"{path}.strategy", f"unknown strategy {strategy!r} (expected: thompson)")
        strategy = None
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


# An auto experiment learns from its variants' proposals by default (every assignment is an exposure).
AUTO_DEFAULT = Ranking(per=DECISION)


def experiment(
    w: Walker,
    node: Node,
    path: str,
    *,
    for_offer: bool,
    scores: delivery.ScoreReader | None = None,
    contents: delivery.VariantContents | None = None,
) -> Experiment | None:
    """``delivery.experiment`` (variants, holdout), then its ``allocation:`` (``with_allocation``)."""
    found = delivery.experiment(w, node, path, for_offer=for_offer, scores=scores, contents=contents)
    return with_allocation(w, node, path, found)


def with_allocation(w: Walker, node: Node, path: str, experiment: Experiment | None) -> Experiment | None:
    """The experiment with the ``allocation:`` of its mapping ``node``: ``weights`` (default), ``auto``
    (Thompson sampling over the variants, clicks per proposal, 100 exposures before learning), or a
    ``ranking:``-like mapping ``{strategy: thompson, metric, per, min_exposure, days}``."""
    found = next(
        (
            value
            for key, value in getattr(node, "value", ())
            if isinstance(key, ScalarNode) and key.value == "allocation"
        ),
        None,
    )
    if found is None or experiment is None:
        return experiment
    where = f"{path}.allocation"
    if isinstance(found, MappingNode):
        learning = ranking(w, found, where)
        return None if learning is None else replace(experiment, allocation=Allocation.AUTO, learning=learning)
    text = w.string(found, where)
    if text is None:
        return None
    if text not in (Allocation.WEIGHTS, Allocation.AUTO):
        w.error(found, where, f"unknown allocation {text!r} (expected: weights, auto or a thompson mapping)")
        return None
    if text == Allocation.WEIGHTS:
        return experiment
    return replace(experiment, allocation=Allocation.AUTO, learning=AUTO_DEFAULT)
