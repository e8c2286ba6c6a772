"""The catalog sections of a ruleset: ``attributes:``, ``placements:`` and ``offers:``.

Reads each entry's own fields and hands its eligibility rules and delivery
controls to :mod:`~decision.rules.eligibility` and :mod:`~decision.rules.delivery`.
Checks across entries (fallbacks, experiment ids) are in :mod:`~decision.rules.crosschecks`.
"""

from __future__ import annotations

import orjson
from yaml.nodes import MappingNode, Node

from decision.rules import delivery, ranking
from decision.rules.conditions import ConditionReader
from decision.rules.eligibility import EligibilityReader
from decision.rules.patterns import ATTRIBUTE_PATTERN, ID_PATTERN
from decision.rules.suggest import did_you_mean
from decision.rules.types import AttrType, EligibilityRule, Offer, Placement
from decision.rules.walker import Walker, kind

MAX_ITEMS_LIMIT = 100


class CatalogReader:
    """Reads the sections in order: attributes first, since placements' formulas and offers' conditions use them."""

    def __init__(self, w: Walker, time_zone: str) -> None:
        self.w = w
        self.time_zone = time_zone
        self.attributes: dict[str, AttrType] = {}
        self.declared_attributes = False
        # Every offer id written, valid or not: a fallback naming an invalid offer is not reported twice.
        self.offer_ids_seen: set[str] = set()
        # Every placement id written, valid or not: an offer of a placement that has its own error (e.g. no
        # fallback) is not reported again as naming an unknown placement (one problem, one error).
        self.placement_ids_seen: set[str] = set()

    def read_attributes(self, node: Node) -> None:
        w = self.w
        self.declared_attributes = True
        if not isinstance(node, MappingNode):
            w.error(node, "attributes", f"must be a mapping of attribute name to type, got {kind(node)}")
            return
        types = ", ".join(t.value for t in AttrType)
        for key_node, value_node in node.value:
            name = w.string(key_node, "attributes", ATTRIBUTE_PATTERN, "attribute name")
            if name is None:
                continue
            path = f"attributes.{name}"
            if name in self.attributes:
                w.error(key_node, path, "duplicate attribute")
                continue
            type_name = w.string(value_node, path)
            if type_name is None:
                continue
            try:
                self.attributes[name] = AttrType(type_name)
            except ValueError:
                w.error(value_node, path, f"unknown type {type_name!r} (expected one of: {types})")

    def placements(self, node: Node) -> dict[str, Placement]:
        w = self.w
        result: dict[str, Placement] = {}
        for index, item in enumerate(w.sequence(node, "placements") or []):
            path = f"placements[{index}]"
            fields = w.mapping(
                item,
                path,
                frozenset({"id", "channels", "max_items", "fallback", "description", "score", "experiment", "ranking"}),
                frozenset({"id", "channels", "fallback"}),
            )
            if fields is None:
                continue
            pid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "placement id") if "id" in fields else None
            if pid is not None:
                path = f"placements[{pid}]"
                self.placement_ids_seen.add(pid)
                if pid in result:
                    w.error(fields["id"], f"{path}.id", f"duplicate placement id {pid!r}")
                    pid = None
            channels = (
                w.unique_strings(fields["channels"], f"{path}.channels", ID_PATTERN, "channel")
                if "channels" in fields
                else None
            )
            max_items = 1
            if "max_items" in fields:
                max_items = w.integer(fields["max_items"], f"{path}.max_items", 1, MAX_ITEMS_LIMIT) or 1
            fallback = (
                w.string(fields["fallback"], f"{path}.fallback", ID_PATTERN, "offer id")
                if "fallback" in fields
                else None
            )
            if "description" in fields:
                w.string(fields["description"], f"{path}.description")
            scores = delivery.ScoreReader(w, self.attributes, self.declared_attributes)
            score = scores.formula(fields["score"], f"{path}.score") if "score" in fields else None
            experiment = (
                ranking.experiment(w, fields["experiment"], f"{path}.experiment", for_offer=False, scores=scores)
                if "experiment" in fields
                else None
            )
            learned = ranking.ranking(w, fields["ranking"], f"{path}.ranking") if "ranking" in fields else None
            if pid is None or channels is None or fallback is None:
                continue
            result[pid] = Placement(
                pid,
                frozenset(channels),
                max_items,
                fallback,
                w.loc(item),
                score=score,
                experiment=experiment,
                ranking=learned,
            )
        return result

    def offers(self, node: Node, placements: dict[str, Placement]) -> dict[str, Offer]:
        w = self.w
        eligibility = EligibilityReader(ConditionReader(w, self.attributes, self.declared_attributes))
        result: dict[str, Offer] = {}
        for index, item in enumerate(w.sequence(node, "offers") or []):
            path = f"offers[{index}]"
            fields = w.mapping(
                item,
                path,
                frozenset(
                    {
                        "id",
                        "placements",
                        "priority",
                        "content",
                        "eligibility",
                        "description",
                        "attributes",
                        "caps",
                        "suppress",
                        "experiment",
                    }
                ),
                frozenset({"id", "placements"}),
            )
            if fields is None:
                continue
            oid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "offer id") if "id" in fields else None
            if oid is not None:
                path = f"offers[{oid}]"
                self.offer_ids_seen.add(oid)
                if oid in result:
                    w.error(fields["id"], f"{path}.id", f"duplicate offer id {oid!r}")
                    oid = None
            offer_placements = (
                w.unique_strings(fields["placements"], f"{path}.placements", ID_PATTERN, "placement id")
                if "placements" in fields
                else None
            )
            for p_index, pname in enumerate(offer_placements or ()):
                if pname not in self.placement_ids_seen:
                    w.error(
                        fields["placements"].value[p_index],
                        f"{path}.placements[{p_index}]",
                        f"unknown placement {pname!r}{did_you_mean(pname, self.placement_ids_seen)}",
                    )
            priority = 0
            if "priority" in fields:
                priority = w.integer(fields["priority"], f"{path}.priority", -1_000_000, 1_000_000) or 0
            content: dict[str, object] = {}
            content_json = "{}"
            if "content" in fields:
                content, content_json = self._content(fields["content"], f"{path}.content")
            if "description" in fields:
                w.string(fields["description"], f"{path}.description")
            rules: tuple[EligibilityRule, ...] = ()
            if oid is not None:
                rules = eligibility.rules(fields.get("eligibility"), item, path, oid)
            attributes = (
                delivery.offer_attributes(w, fields["attributes"], f"{path}.attributes")
                if "attributes" in fields
                else {}
            )
            caps = delivery.caps(w, fields["caps"], f"{path}.caps", self.time_zone) if "caps" in fields else ()
            suppression = (
                delivery.suppression(w, fields["suppress"], f"{path}.suppress") if "suppress" in fields else None
            )
            experiment = (
                ranking.experiment(w, fields["experiment"], f"{path}.experiment", for_offer=True)
                if "experiment" in fields
                else None
            )
            if oid is None or offer_placements is None:
                continue
            result[oid] = Offer(
                id=oid,
                placements=offer_placements,
                priority=priority,
                content=content,
                content_json=content_json,
                rules=rules,
                position=len(result),
                location=w.loc(item),
                caps=caps,
                suppression=suppression,
                experiment=experiment,
                attributes=attributes,
            )
        return result

    def _content(self, node: Node, path: str) -> tuple[dict[str, object], str]:
        w = self.w
        if not isinstance(node, MappingNode):
            w.error(node, path, f"must be a mapping, got {kind(node)}")
            return {}, "{}"
        value = w.value(node)
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            w.error(node, path, f"cannot be represented as JSON: {exc}")
            return {}, "{}"
        assert isinstance(value, dict)
        return value, encoded.decode()
