"""Parsing of an ``experiment:`` (a placement's or an offer's): variants, holdout group, ``allocation:``. Part of
the loader.

Called by the catalog reader (decision/rules/catalog.py) with its node walker. Every problem is located
(file:line). Assignment to a variant is ``decision.core.experiments``'.

    experiment: {id, variants: [{id, weight, content | score}], holdout: {weight, serves}, allocation: auto}
"""

from __future__ import annotations

import orjson
from yaml.nodes import MappingNode, Node

from decision.rules.content import ContentReader
from decision.rules.delivery import ScoreReader
from decision.rules.fields import EXPERIMENT, HOLDOUT_GROUP, OFFER_VARIANT, PLACEMENT_VARIANT
from decision.rules.formula import Formula
from decision.rules.patterns import ID_PATTERN
from decision.rules.ranking import ranking
from decision.rules.templates import ContentTemplate, Escape, OnMissing
from decision.rules.types import DECISION, HOLDOUT, Allocation, Experiment, HoldoutServes, Ranking, Variant
from decision.rules.walker import Walker

MAX_WEIGHT = 1_000_000
MAX_VARIANTS = 32
# An auto experiment learns from its variants' proposals by default (every assignment is an exposure).
AUTO_DEFAULT = Ranking(per=DECISION)
_WEIGHTS: tuple[Allocation, Ranking | None] = (Allocation.WEIGHTS, None)

# How an offer's variants read their content: the offer's content reader and its template options.
VariantContents = tuple[ContentReader, Escape, OnMissing]


def experiment(
    w: Walker,
    node: Node,
    path: str,
    *,
    for_offer: bool,
    scores: ScoreReader | None = None,
    contents: VariantContents | None = None,
) -> Experiment | None:
    """An experiment: its variants (an offer's vary its content, a placement's its score formula), its holdout
    group and its ``allocation:``; None (with problems recorded) when it is invalid."""
    fields = w.mapping(node, path, EXPERIMENT.allowed, EXPERIMENT.required)
    if fields is None:
        return None
    eid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "experiment id") if "id" in fields else None
    variants: list[Variant] = []
    broken = False
    items = w.sequence(fields["variants"], f"{path}.variants") if "variants" in fields else None
    if items is not None and len(items) > MAX_VARIANTS:
        w.error(fields["variants"], f"{path}.variants", f"at most {MAX_VARIANTS} variants")
        items = None
    for index, item in enumerate(items or []):
        variant = _variant(w, item, f"{path}.variants[{index}]", for_offer, scores, contents)
        if variant is None:
            broken = True
            continue
        if any(v.id == variant.id for v in variants):
            w.error(item, f"{path}.variants[{index}].id", f"duplicate variant id {variant.id!r}")
            broken = True
            continue
        variants.append(variant)
    holdout_weight, serves = 0, HoldoutServes.FALLBACK
    if "holdout" in fields:
        held = _holdout(w, fields["holdout"], f"{path}.holdout")
        if held is None:
            broken = True
        else:
            holdout_weight, serves = held
    allocated = _allocation(w, fields["allocation"], f"{path}.allocation") if "allocation" in fields else _WEIGHTS
    if eid is None or broken or items is None or allocated is None:
        return None
    if holdout_weight + sum(v.weight for v in variants) == 0:
        w.error(node, f"{path}.variants", "the weights add up to 0: nobody would be assigned")
        return None
    allocation, learning = allocated
    return Experiment(eid, tuple(variants), holdout_weight, serves, w.loc(node), allocation, learning)


def _variant(
    w: Walker, node: Node, path: str, for_offer: bool, scores: ScoreReader | None, contents: VariantContents | None
) -> Variant | None:
    spec = OFFER_VARIANT if for_offer else PLACEMENT_VARIANT
    fields = w.mapping(node, path, spec.allowed, spec.required)
    if fields is None:
        return None
    vid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "variant id") if "id" in fields else None
    if vid == HOLDOUT:
        w.error(fields["id"], f"{path}.id", f"{HOLDOUT!r} names the holdout group; choose another variant id")
        vid = None
    weight = w.integer(fields["weight"], f"{path}.weight", 0, MAX_WEIGHT) if "weight" in fields else None
    content_json: str | None = None
    template: ContentTemplate | None = None
    score: Formula | None = None
    broken = False
    if "content" in fields and contents is not None:  # with placeholders, as the offer's own content
        reader, escape, on_missing = contents
        errors = len(w.problems)
        _, content_json, shape = reader.content(fields["content"], f"{path}.content")
        broken = len(w.problems) > errors
        template = None if shape is None else ContentTemplate(shape, escape, on_missing)
    elif "content" in fields:
        content = fields["content"]
        value = w.value(content)
        if not isinstance(content, MappingNode) or not isinstance(value, dict):
            w.error(content, f"{path}.content", "must be a mapping")
            broken = True
        else:
            try:
                content_json = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            except TypeError as exc:
                w.error(content, f"{path}.content", f"cannot be represented as JSON: {exc}")
                broken = True
    if "score" in fields and scores is not None:
        score = scores.formula(fields["score"], f"{path}.score")
        broken = broken or score is None
    if vid is None or weight is None or broken:
        return None
    return Variant(vid, weight, content_json, score, template)


def _holdout(w: Walker, node: Node, path: str) -> tuple[int, HoldoutServes] | None:
    fields = w.mapping(node, path, HOLDOUT_GROUP.allowed, HOLDOUT_GROUP.required)
    if fields is None:
        return None
    weight = w.integer(fields["weight"], f"{path}.weight", 0, MAX_WEIGHT) if "weight" in fields else None
    serves = HoldoutServes.FALLBACK
    if "serves" in fields:
        text = w.choice(fields["serves"], f"{path}.serves", HoldoutServes)
        if text is None:
            return None
        serves = HoldoutServes(text)
    return None if weight is None else (weight, serves)


def _allocation(w: Walker, node: Node, path: str) -> tuple[Allocation, Ranking | None] | None:
    """``weights`` (the default), ``auto`` (Thompson sampling over the variants, clicks per proposal, 100
    exposures before learning), or a ``ranking:``-like mapping ``{strategy: thompson, metric, per,
    min_exposure, days}``; None (with problems recorded) when it is invalid."""
    if isinstance(node, MappingNode):
        learning = ranking(w, node, path)
        return None if learning is None else (Allocation.AUTO, learning)
    text = w.string(node, path)
    if text is None:
        return None
    if text not in (Allocation.WEIGHTS, Allocation.AUTO):
        w.error(node, path, f"unknown allocation {text!r} (expected: weights, auto or a thompson mapping)")
        return None
    return _WEIGHTS if text == Allocation.WEIGHTS else (Allocation.AUTO, AUTO_DEFAULT)
