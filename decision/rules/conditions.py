"""Condition trees of eligibility rules: and / or / not over ``context.<attribute>`` and
``profile.<name>`` predicates.

Operands are checked against the declared attribute types (when ``attributes:``
is given; profile attributes must always be declared, under ``profile_attributes:``)
so that a comparison that could never hold is an error at load time, not a
silent miss at decision time.
"""

from __future__ import annotations

import math

from yaml.nodes import MappingNode, Node, SequenceNode

from decision.rules.fields import CONDITION_KEYWORDS
from decision.rules.patterns import ATTRIBUTE_PATTERN, PROFILE_SCOPE
from decision.rules.suggest import OPERATOR_ALIASES, did_you_mean
from decision.rules.types import AllOf, AnyOf, AttrType, Condition, Not, Op, Predicate, Scalar, shown
from decision.rules.walker import Unconstructible, Walker, describe

CONTEXT_PREFIX = "context."
MAX_CONDITION_DEPTH = 8


class ConditionReader:
    """Reads condition trees; ``attributes`` is read live (the loader fills it before offers are read).

    ``attributes`` holds the context attributes by name and the profile attributes by their
    ``profile.<name>`` key, as the rules see them.
    """

    def __init__(self, w: Walker, attributes: dict[str, AttrType], declared: bool) -> None:
        self.w = w
        self.attributes = attributes
        self.declared = declared

    def condition(self, node: Node, path: str, depth: int = 0) -> Condition | None:
        w = self.w
        if depth > MAX_CONDITION_DEPTH:
            w.error(node, path, f"conditions nested deeper than {MAX_CONDITION_DEPTH} levels")
            return None
        if isinstance(node, SequenceNode):  # a bare list means "all of"
            children = self._children(node, path, depth)
            return AllOf(children) if children is not None else None
        if not isinstance(node, MappingNode) or len(node.value) != 1:
            w.error(
                node,
                path,
                "a condition is a mapping with exactly one key: and, or, not, context.<attribute> or profile.<name>",
            )
            return None
        key_node, value_node = node.value[0]
        key = w.value(key_node)
        if key in ("and", "or"):
            children = self._children(value_node, f"{path}.{key}", depth)
            if children is None:
                return None
            return AllOf(children) if key == "and" else AnyOf(children)
        if key == "not":
            child = self.condition(value_node, f"{path}.not", depth + 1)
            return Not(child) if child is not None else None
        if isinstance(key, str) and key.startswith(CONTEXT_PREFIX):
            name = key[len(CONTEXT_PREFIX) :]
            if name.startswith(PROFILE_SCOPE):  # its key would be a profile attribute's
                w.error(key_node, f"{path}.{key}", f"context names starting with {PROFILE_SCOPE!r} are reserved")
                return None
            return self._predicates(key_node, value_node, f"{path}.{key}", name)
        if isinstance(key, str) and key.startswith(PROFILE_SCOPE):
            return self._predicates(key_node, value_node, f"{path}.{key}", key)
        # Close to a keyword or to a declared attribute as rules write it (contxt.city, profle.tier).
        known = (*CONDITION_KEYWORDS, *(shown(a) for a in self.attributes))
        hint = did_you_mean(key, known) if isinstance(key, str) else ""
        w.error(
            key_node,
            path,
            f"unknown condition {key!r}: expected and, or, not, context.<attribute> or profile.<name>{hint}",
        )
        return None

    def _children(self, node: Node, path: str, depth: int) -> tuple[Condition, ...] | None:
        items = self.w.sequence(node, path)
        if items is None:
            return None
        children = [self.condition(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
        if any(child is None for child in children):
            return None
        return tuple(c for c in children if c is not None)

    def _predicates(self, key_node: Node, node: Node, path: str, attribute: str) -> Condition | None:
        w = self.w
        profile = attribute.startswith(PROFILE_SCOPE)
        if not ATTRIBUTE_PATTERN.fullmatch(attribute):
            w.error(key_node, path, f"invalid attribute name {attribute!r}")
            return None
        if profile and attribute not in self.attributes:
            hint = did_you_mean(attribute, (a for a in self.attributes if a.startswith(PROFILE_SCOPE)))
            w.error(key_node, path, f"unknown attribute {attribute} (not declared under profile_attributes:){hint}")
            return None
        if not profile and self.declared and attribute not in self.attributes:
            context_names = (a for a in self.attributes if not a.startswith(PROFILE_SCOPE))
            # context.tier written for the profile attribute tier: the names are too far apart for similarity.
            hint = (
                f" (did you mean {PROFILE_SCOPE + attribute!r}?)"
                if PROFILE_SCOPE + attribute in self.attributes
                else did_you_mean(attribute, context_names)
            )
            w.error(key_node, path, f"unknown attribute {attribute!r} (not declared under attributes:){hint}")
            return None
        ops = ", ".join(op.value for op in Op)
        if not isinstance(node, MappingNode) or not node.value:
            w.error(node, path, f"must map an operator ({ops}) to its operand, e.g. {{gt: 100}}")
            return None
        predicates: list[Condition] = []
        seen: set[str] = set()
        for op_node, operand_node in node.value:
            name = w.value(op_node)
            op_path = f"{path}.{name}"
            if not isinstance(name, str) or name not in Op.__members__.values():
                hint = did_you_mean(name, (op.value for op in Op), OPERATOR_ALIASES) if isinstance(name, str) else ""
                w.error(op_node, op_path, f"unknown operator {name!r}{hint} (expected one of: {ops})")
                continue
            if name in seen:
                w.error(op_node, op_path, "duplicate operator")
                continue
            seen.add(name)
            predicate = self._predicate(attribute, Op(name), operand_node, op_path)
            if predicate is not None:
                predicates.append(predicate)
        if len(predicates) != len(node.value):
            return None
        return predicates[0] if len(predicates) == 1 else AllOf(tuple(predicates))

    def _predicate(self, attribute: str, op: Op, node: Node, path: str) -> Condition | None:
        w = self.w
        declared = self.attributes.get(attribute)
        loc = w.loc(node)
        if op is Op.EXISTS:
            present = w.boolean(node, path)
            if present is None:
                return None
            predicate = Predicate(attribute, Op.EXISTS, True, loc)
            return predicate if present else Not(predicate)
        if op in (Op.IN, Op.NOT_IN):
            items = w.sequence(node, path)
            if items is None:
                return None
            values = [self._scalar(item, f"{path}[{i}]", declared) for i, item in enumerate(items)]
            if any(v is None for v in values):
                return None
            return Predicate(attribute, op, tuple(v for v in values if v is not None), loc)
        if op in (Op.LT, Op.LE, Op.GT, Op.GE):
            value = self._scalar(node, path, declared, only=(float,))
            return Predicate(attribute, op, value, loc) if value is not None else None
        if op is Op.STARTS_WITH:
            value = self._scalar(node, path, declared, only=(str,))
            return Predicate(attribute, op, value, loc) if value is not None else None
        if op is Op.CONTAINS:
            # contains tests a substring of a string, or an item of a list.
            if declared is not None and declared not in (AttrType.STRING, AttrType.LIST):
                w.error(
                    node,
                    path,
                    f"type mismatch: contains needs a string or list attribute, "
                    f"{shown(attribute)} is declared {declared}",
                )
                return None
            value = self._scalar(node, path, None if declared is AttrType.LIST else declared)
            if value is not None and declared is AttrType.STRING and not isinstance(value, str):
                w.error(node, path, f"type mismatch: {shown(attribute)} is a string, operand is {_type_name(value)}")
                return None
            return Predicate(attribute, op, value, loc) if value is not None else None
        value = self._scalar(node, path, declared)
        return Predicate(attribute, op, value, loc) if value is not None else None

    def _scalar(
        self,
        node: Node,
        path: str,
        declared: AttrType | None,
        only: tuple[type, ...] | None = None,
    ) -> Scalar | None:
        w = self.w
        value = w.value(node)
        scalar: Scalar
        if isinstance(node, MappingNode | SequenceNode) or value is None or isinstance(value, Unconstructible):
            w.error(node, path, f"type mismatch: expected a string, number or boolean, got {describe(value, node)}")
            return None
        if isinstance(value, bool | str):
            scalar = value
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                w.error(node, path, f"numbers must be finite, got {value!r}")
                return None
            scalar = float(value)
        else:  # timestamps, binary: compare as the text that was written
            scalar = str(node.value)
        if (only is not None and not isinstance(scalar, only)) or (only == (float,) and isinstance(scalar, bool)):
            expected = " or ".join(_TYPE_NAMES[t] for t in only or ())
            w.error(node, path, f"type mismatch: expected a {expected}, got {_type_name(scalar)} {scalar!r}")
            return None
        if declared is not None and declared is not AttrType.LIST and _attr_type(scalar) is not declared:
            w.error(
                node,
                path,
                f"type mismatch: attribute is declared {declared}, operand is {_type_name(scalar)} {scalar!r}",
            )
            return None
        if declared is AttrType.LIST:
            w.error(node, path, "type mismatch: a list attribute can only be tested with contains or exists")
            return None
        return scalar


_TYPE_NAMES: dict[type, str] = {float: "number", str: "string", bool: "boolean"}


def _attr_type(value: Scalar) -> AttrType:
    if isinstance(value, bool):
        return AttrType.BOOL
    if isinstance(value, str):
        return AttrType.STRING
    return AttrType.NUMBER


def _type_name(value: Scalar) -> str:
    return _attr_type(value).value
