"""The catalog sections of a ruleset: ``attributes:``, ``profile_attributes:``, ``placements:`` and ``offers:``.

Reads each entry's own fields and hands its eligibility rules and delivery
controls to :mod:`~decision.rules.eligibility` and :mod:`~decision.rules.delivery`.
Checks across entries (fallbacks, experiment ids) are in :mod:`~decision.rules.crosschecks`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from enum import StrEnum

from yaml.nodes import Node

from decision.rules import delivery, experiments, ranking
from decision.rules.conditions import ConditionReader
from decision.rules.content import ContentReader
from decision.rules.eligibility import EligibilityReader
from decision.rules.fields import OFFER, PLACEMENT, Fields
from decision.rules.patterns import ATTRIBUTE_PATTERN, ID_PATTERN, PROFILE_SCOPE
from decision.rules.suggest import did_you_mean
from decision.rules.templates import ContentTemplate
from decision.rules.types import AttrType, EligibilityRule, Offer, Placement, ProfileAttrType
from decision.rules.walker import Walker
from inbound_common.codecs import ATTRIBUTE_NAME

MAX_ITEMS_LIMIT = 100


class CatalogReader:
    """Reads the sections in order: attributes first, since placements' formulas and offers' conditions use them."""

    def __init__(self, w: Walker, time_zone: str) -> None:
        self.w = w
        self.time_zone = time_zone
        self.attributes: dict[str, AttrType] = {}
        self.declared_attributes = False
        self.profile_attributes: dict[str, ProfileAttrType] = {}
        # Every offer id written, valid or not: a fallback naming an invalid offer is not reported twice.
        self.offer_ids_seen: set[str] = set()
        # Every placement id written, valid or not: an offer of a placement that has its own error (e.g. no
        # fallback) is not reported again as naming an unknown placement (one problem, one error).
        self.placement_ids_seen: set[str] = set()

    def read_attributes(self, node: Node) -> None:
        w = self.w
        self.declared_attributes = True
        for type_node, name, type_name in self._declarations(node, "attributes", ATTRIBUTE_PATTERN, AttrType):
            if name.startswith(PROFILE_SCOPE):
                w.error(type_node, f"attributes.{name}", f"names starting with {PROFILE_SCOPE!r} are reserved")
            else:
                self.attributes[name] = AttrType(type_name)

    def read_profile_attributes(self, node: Node) -> None:
        """``profile_attributes:`` name -> type: what rules may read as ``profile.<name>``."""
        declared = self._declarations(node, "profile_attributes", ATTRIBUTE_NAME, ProfileAttrType)
        for _, name, type_name in declared:
            self.profile_attributes[name] = ProfileAttrType(type_name)

    def _declarations(
        self, node: Node, section: str, pattern: re.Pattern[str], types: type[StrEnum]
    ) -> Iterator[tuple[Node, str, str]]:
        """(type node, name, type name) of each well-formed, first-seen declaration of a section, of a type it
        knows."""
        w = self.w
        for _, name, value_node in w.named(node, section, pattern, "attribute name to type"):
            type_name = w.choice(value_node, f"{section}.{name}", (t.value for t in types), "type")
            if type_name is not None:
                yield value_node, name, type_name

    def rule_types(self) -> dict[str, AttrType]:
        """Context attributes by name and profile attributes by ``profile.<name>``: as rules see them."""
        profile = {PROFILE_SCOPE + name: t.rule_type for name, t in self.profile_attributes.items()}
        return {**self.attributes, **profile}

    def placements(self, node: Node) -> dict[str, Placement]:
        w = self.w
        result: dict[str, Placement] = {}
        for item, fields, pid, path in self._items(
            node, "placements", PLACEMENT, "placement", self.placement_ids_seen, result
        ):
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
            scores = delivery.ScoreReader(w, self.attributes, self.declared_attributes, self.profile_attributes)
            score = scores.formula(fields["score"], f"{path}.score") if "score" in fields else None
            experiment = (
                experiments.experiment(w, fields["experiment"], f"{path}.experiment", for_offer=False, scores=scores)
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

    def _items(
        self, node: Node, section: str, spec: Fields, kind: str, seen: set[str], taken: Mapping[str, object]
    ) -> Iterator[tuple[Node, dict[str, Node], str | None, str]]:
        """Each well-formed mapping of a section's list: (its node, its fields, its id, its path). The id is None
        when missing, invalid or a duplicate of one in ``taken`` (reported); the path is ``offers[<id>]`` once the
        id is known, else ``offers[<index>]``. Every id written joins ``seen``."""
        w = self.w
        for index, item in enumerate(w.sequence(node, section) or []):
            path = f"{section}[{index}]"
            fields = w.mapping(item, path, spec.allowed, spec.required)
            if fields is None:
                continue
            item_id = w.string(fields["id"], f"{path}.id", ID_PATTERN, f"{kind} id") if "id" in fields else None
            if item_id is not None:
                path = f"{section}[{item_id}]"
                seen.add(item_id)
                if item_id in taken:
                    w.error(fields["id"], f"{path}.id", f"duplicate {kind} id {item_id!r}")
                    item_id = None
            yield item, fields, item_id, path

    def offers(self, node: Node, placements: dict[str, Placement]) -> dict[str, Offer]:
        w = self.w
        eligibility = EligibilityReader(ConditionReader(w, self.rule_types(), self.declared_attributes))
        contents = ContentReader(w, self.attributes, self.declared_attributes, self.profile_attributes)
        result: dict[str, Offer] = {}
        for item, fields, oid, path in self._items(node, "offers", OFFER, "offer", self.offer_ids_seen, result):
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
            shape = None
            if "content" in fields:
                content, content_json, shape = contents.content(fields["content"], f"{path}.content")
            escape, on_missing = contents.options(fields, path)
            template = None if shape is None else ContentTemplate(shape, escape, on_missing)
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
                experiments.experiment(
                    w,
                    fields["experiment"],
                    f"{path}.experiment",
                    for_offer=True,
                    contents=(contents, escape, on_missing),
                )
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
                template=template,
            )
        return result
