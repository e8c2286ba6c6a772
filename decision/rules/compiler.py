"""Compile a :class:`Ruleset`'s eligibility rules into a durable_rules definition.

Each eligibility rule becomes one durable_rules rule over a single *fact* that
describes one request: the profile's audiences and the request's context.
Asserting that fact fires every matching rule at once (a fact, unlike an event,
is seen by all rules). A rule's schedule is not part of its engine rule: it is
kept beside it (``CompiledRule.schedule``), and the engine holds only the rules
whose schedule includes the present (decision.rules.engine rebuilds its
rulesets when the next start or end of a schedule comes).

How the fact is laid out, and why:

* Field names are short generated ones (``a3``, ``k1``, ``q1``...), never ids
  from the ruleset: durable_rules splits names on dots, and it compares
  property names by their 32-bit FNV-1a hash only, so the compiler checks that
  no two names it uses collide.
* durable_rules coerces freely (``"1" == 1 == true``) and has no general
  negation, while a rule may hold at most 15 ``$and``/``$or`` groups. So each
  context attribute ``i`` the ruleset tests is written as: ``k<i>``, its kind
  (``s``, ``n``, ``b``, ``l``, or ``-`` when absent), always present;
  ``q<i>``, an equality key (``s:<text>``, ``n:<number>``, ``b:true``; empty
  for a list or an absent attribute), always present; and ``n<i>``, the
  number, only for numbers, for ordering. The typed key makes every equality
  strict, and because ``k``/``q`` are always present, a negated equality,
  ``in``, ``not_in`` or ``exists`` is a single ``$neq``/``$eq`` leaf.
* ``starts_with`` and ``contains`` are *features*: the fact carries ``f<k>``
  when the test holds, computed while building the fact. durable_rules'
  regular expressions cannot be negated, escape with ``%`` and cap their
  automaton size, so a negated or long pattern could not be expressed.
* ``not`` is pushed down to the leaves (negation normal form).
* A rule with more than 15 groups is split into alternatives (distributing an
  ``or``) that each fit; any of them firing means the rule matches.
* Only audiences the ruleset names are put in the fact: durable_rules caps a
  fact at 255 properties.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from decision.rules.errors import Problem, RulesetInvalid
from decision.rules.types import (
    AllOf,
    AudienceRule,
    Condition,
    Context,
    Location,
    Not,
    Op,
    Predicate,
    Ruleset,
    Scalar,
    Schedule,
)

Json = dict[str, Any]

# durable_rules rejects a fact with 255 or more properties.
MAX_FACT_PROPERTIES: Final = 254
# The fixed fields of every fact: its id, the session id and the marker.
FIXED_FIELDS: Final = ("id", "sid", "t")
# Room reserved for audiences when checking a ruleset's size.
MIN_AUDIENCE_ROOM: Final = 32
# durable_rules allows 31 entries in a rule's expression sequence; each
# $and/$or group takes two (rete.c, MAX_SEQUENCE_EXPRESSIONS).
MAX_GROUPS_PER_RULE: Final = 15
# A rule split into more alternatives than this is refused as too complex.
MAX_ALTERNATIVES: Final = 64
ABSENT: Final = "-"
SESSION_ID: Final = "0"
# Every rule requires the marker, so that the session's own state object (which
# durable_rules also matches facts against) never satisfies a rule made only of
# negations.
MARKER_FIELD: Final = "t"
MARKER: Final = "q"
_ENGINE_RESERVED: Final = ("$s", "sid", "id", "$f")


class _Truth:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"


TRUE: Final = _Truth(True)
FALSE: Final = _Truth(False)


@dataclass(frozen=True, slots=True)
class _And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class _Leaf:
    json: Json


Expr = _And | _Or | _Leaf | _Truth


def conj(items: Iterable[Expr]) -> Expr:
    return _joined(items, _And, FALSE, TRUE)


def disj(items: Iterable[Expr]) -> Expr:
    return _joined(items, _Or, TRUE, FALSE)


def _joined(items: Iterable[Expr], kind: type[_And] | type[_Or], absorbing: _Truth, neutral: _Truth) -> Expr:
    """``items`` joined by ``kind`` (and / or), flattened: the absorbing truth wins, the neutral one drops out."""
    flat: list[Expr] = []
    for item in items:
        if item is absorbing:
            return absorbing
        if item is neutral:
            continue
        flat.extend(item.items if isinstance(item, kind) else (item,))
    if not flat:
        return neutral
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def to_json(expr: Expr) -> Json:
    if isinstance(expr, _Leaf):
        return expr.json
    if isinstance(expr, _And):
        return {"$and": [to_json(i) for i in expr.items]}
    if isinstance(expr, _Or):
        return {"$or": [to_json(i) for i in expr.items]}
    raise ValueError(f"{expr!r} has no durable_rules form")


def _ex(name: str) -> Expr:
    return _Leaf({"$ex": {name: 1}})


def _nex(name: str) -> Expr:
    return _Leaf({"$nex": {name: 1}})


def engine_value(value: Scalar) -> Scalar | orjson.Fragment:
    """A value as durable_rules' JSON parser reads it.

    Its number grammar accepts an exponent only after a fraction ("1.0e-07",
    not "1e-07", which orjson and repr() write), so such floats are written
    out by hand.
    """
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            return orjson.Fragment(f"{mantissa}.0e{exponent}")
    return value


def _cmp(op: str, name: str, value: Scalar) -> Expr:
    engine = engine_value(value)
    return _Leaf({name: engine} if op == "$eq" else {op: {name: engine}})


_NEGATED_COMPARISON: Final = {"$lt": "$gte", "$lte": "$gt", "$gt": "$lte", "$gte": "$lt", "$eq": "$neq", "$neq": "$eq"}
_ORDER_OPS: Final = {Op.LT: "$lt", Op.LE: "$lte", Op.GT: "$gt", Op.GE: "$gte"}


@dataclass(frozen=True, slots=True)
class AttributeFields:
    """The fields of one context attribute in the fact (see the module docstring)."""

    kind: str
    key: str
    number: str


def kind_of(value: Scalar | tuple[Scalar, ...] | None) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, tuple):
        return "l"
    if isinstance(value, bool):
        return "b"
    return "s" if isinstance(value, str) else "n"


def equality_key(value: Scalar) -> str:
    """A string equal for two values exactly when they are equal and of one type."""
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, str):
        return "s:" + value
    return "n:" + repr(value + 0.0)  # + 0.0 turns -0.0 into 0.0, which it equals


@dataclass(frozen=True, slots=True)
class Feature:
    """A string/list test evaluated while building the fact; ``field`` is set when it holds."""

    field: str
    attribute: str
    op: Op
    operand: Scalar


def _item_key(item: object) -> str | None:
    """A list item's ``equality_key`` (None for what no operand equals: NaN, a type no operand has)."""
    kind = type(item)
    if kind is str:
        return "s:" + item  # type: ignore[operator]
    if kind is bool:
        return "b:true" if item else "b:false"
    if kind is float and item == item:
        return equality_key(item)  # type: ignore[arg-type]
    return None


@dataclass(frozen=True, slots=True)
class FactLayout:
    """How a request is written as a durable_rules fact."""

    audience_fields: Mapping[str, str]
    attribute_fields: Mapping[str, AttributeFields]
    features: tuple[Feature, ...]
    # The features by attribute, as cheap to test as each type of value allows (reference.OPERATORS' meaning:
    # on a string, contains/starts_with of a string operand; on a list, contains of an item equal in value and
    # type): (attribute, (field, is starts_with, operand) tested on a string, (field, operand's key) on a list).
    _tests: tuple[tuple[str, tuple[tuple[str, bool, str], ...], tuple[tuple[str, str], ...]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        groups: dict[str, tuple[list[tuple[str, bool, str]], list[tuple[str, str]]]] = {}
        for feature in self.features:
            on_text, in_list = groups.setdefault(feature.attribute, ([], []))
            operand = feature.operand
            if isinstance(operand, str):
                on_text.append((feature.field, feature.op is Op.STARTS_WITH, operand))
            if feature.op is Op.CONTAINS and isinstance(operand, str | float | bool) and operand == operand:
                in_list.append((feature.field, equality_key(operand)))
        tests = tuple((attribute, tuple(text), tuple(items)) for attribute, (text, items) in groups.items())
        object.__setattr__(self, "_tests", tests)

    def names(self) -> frozenset[str]:
        """Every field a fact of this layout may hold, but the fixed ones."""
        attributes = (name for f in self.attribute_fields.values() for name in (f.kind, f.key, f.number))
        return frozenset((*self.audience_fields.values(), *attributes, *(f.field for f in self.features)))

    def restricted(self, read: AbstractSet[str]) -> FactLayout:
        """The layout of the facts holding only the fields in ``read`` (those some rule tests; an attribute's
        fields all three when a rule tests one of them), the fixed ones too: the same rules match them."""
        return FactLayout(
            audience_fields={a: name for a, name in self.audience_fields.items() if name in read},
            attribute_fields={
                attribute: fields
                for attribute, fields in self.attribute_fields.items()
                if not read.isdisjoint((fields.kind, fields.key, fields.number))
            },
            features=tuple(f for f in self.features if f.field in read),
        )

    def fact(self, fact_id: int, audiences: AbstractSet[str], context: Context) -> Json:
        fact: Json = {"id": fact_id, "sid": SESSION_ID, MARKER_FIELD: MARKER}
        audience_fields = self.audience_fields
        if len(audiences) < len(audience_fields):
            for audience in audiences:
                name = audience_fields.get(audience)
                if name is not None:
                    fact[name] = 1
        else:
            for audience, name in audience_fields.items():
                if audience in audiences:
                    fact[name] = 1
        for attribute, fields in self.attribute_fields.items():
            value = context.get(attribute)
            if value is None:
                fact[fields.kind] = ABSENT
                fact[fields.key] = ""
            elif isinstance(value, tuple):
                fact[fields.kind] = "l"
                fact[fields.key] = ""
            else:
                fact[fields.kind] = kind_of(value)
                fact[fields.key] = equality_key(value)
                if isinstance(value, float):
                    fact[fields.number] = engine_value(value)
        for attribute, on_text, in_list in self._tests:
            value = context.get(attribute)
            if isinstance(value, str):
                for name, starts, operand in on_text:
                    if value.startswith(operand) if starts else operand in value:
                        fact[name] = 1
            elif in_list and isinstance(value, tuple):
                keys = {_item_key(item) for item in value}
                for name, key in in_list:
                    if key in keys:
                        fact[name] = 1
        return fact


ALWAYS: Final = Schedule()


@dataclass(frozen=True, slots=True)
class CompiledRule:
    offer_id: str
    rule_name: str
    # Index of the rule within its offer: the first matching rule is reported.
    rule_index: int
    # When the rule may match at all: the engine holds it only while its schedule includes the present.
    schedule: Schedule = ALWAYS


@dataclass(frozen=True, slots=True)
class Compilation:
    """A ruleset compiled for durable_rules."""

    definition: Json
    # Engine rule name -> the eligibility rule it (or one of its alternatives) stands for.
    rules: Mapping[str, CompiledRule]
    layout: FactLayout
    # Rules that can never match (e.g. excluded and required at once) are left
    # out of the definition.
    never_matching: tuple[CompiledRule, ...] = field(default=())


def fnv1a32(name: str) -> int:
    """The hash durable_rules identifies property names by (json.c, signed chars)."""
    value = 0x811C9DC5
    for byte in name.encode():
        signed = byte - 256 if byte >= 128 else byte
        value ^= signed & 0xFFFFFFFF
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


class _Names:
    """Allocates fact field names whose FNV-1a hashes are all distinct."""

    def __init__(self) -> None:
        self._hashes = {fnv1a32(n) for n in (*FIXED_FIELDS, *_ENGINE_RESERVED)}

    def new(self, base: str) -> str:
        name = base
        while fnv1a32(name) in self._hashes:
            name += "_"
        self._hashes.add(fnv1a32(name))
        return name


def groups(expr: Expr) -> int:
    """How many $and/$or groups the expression takes in durable_rules."""
    if isinstance(expr, _And | _Or):
        return 1 + sum(groups(i) for i in expr.items)
    return 0


def split_to_fit(expr: Expr, limit: int = MAX_GROUPS_PER_RULE - 1) -> list[Expr]:
    """Alternatives, each within ``limit`` groups, whose disjunction is ``expr``.

    Splits a top-level ``or`` into its branches; in an ``and``, distributes its
    largest ``or`` child. The caller's marker takes the last group.
    """
    if groups(expr) <= limit:
        return [expr]
    if isinstance(expr, _Or):
        return [part for item in expr.items for part in split_to_fit(item, limit)]
    assert isinstance(expr, _And)
    ors = [i for i in expr.items if isinstance(i, _Or)]
    if not ors:  # only nested ands, flattened by conj(): cannot happen
        raise ValueError("an and-only expression exceeds the group limit")
    widest = max(ors, key=groups)
    others = [i for i in expr.items if i is not widest]
    return [part for branch in widest.items for part in split_to_fit(conj([*others, branch]), limit)]


class _Compiler:
    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.names = _Names()
        self.audience_fields: dict[str, str] = {}
        self.attribute_fields: dict[str, AttributeFields] = {}
        self.features: dict[tuple[str, Op, Scalar, type], Feature] = {}
        self.problems: list[Problem] = []

    def audience(self, audience: str) -> str:
        name = self.audience_fields.get(audience)
        if name is None:
            name = self.audience_fields[audience] = self.names.new(f"a{len(self.audience_fields)}")
        return name

    def attribute(self, attribute: str) -> AttributeFields:
        fields = self.attribute_fields.get(attribute)
        if fields is None:
            i = len(self.attribute_fields)
            fields = AttributeFields(*(self.names.new(f"{kind}{i}") for kind in "kqn"))
            self.attribute_fields[attribute] = fields
        return fields

    def feature(self, predicate: Predicate) -> str:
        assert not isinstance(predicate.operand, tuple)
        # 1.0 == True in Python: the type is part of the key.
        key = (predicate.attribute, predicate.op, predicate.operand, type(predicate.operand))
        feature = self.features.get(key)
        if feature is None:
            name = self.names.new(f"f{len(self.features)}")
            feature = self.features[key] = Feature(name, predicate.attribute, predicate.op, predicate.operand)
        return feature.field

    # -- expressions ------------------------------------------------------
    def audiences(self, rule: AudienceRule) -> Expr:
        return conj(
            [
                *(_ex(self.audience(a)) for a in rule.all),
                disj(_ex(self.audience(a)) for a in rule.any) if rule.any else TRUE,
                *(_nex(self.audience(a)) for a in rule.none),
            ]
        )

    def condition(self, condition: Condition, negated: bool = False) -> Expr:
        if isinstance(condition, Predicate):
            return self.predicate(condition, negated)
        if isinstance(condition, Not):
            return self.condition(condition.child, not negated)
        children = [self.condition(c, negated) for c in condition.children]
        # De Morgan: a negated "all" is an "any" of negations, and back.
        if isinstance(condition, AllOf) != negated:
            return conj(children)
        return disj(children)

    def predicate(self, p: Predicate, negated: bool) -> Expr:
        if p.op in (Op.CONTAINS, Op.STARTS_WITH):
            name = self.feature(p)
            return _nex(name) if negated else _ex(name)
        f = self.attribute(p.attribute)
        if p.op is Op.EXISTS:
            return _cmp("$eq" if negated else "$neq", f.kind, ABSENT)
        if p.op in (Op.IN, Op.NOT_IN):
            assert isinstance(p.operand, tuple)
            keys = [equality_key(v) for v in p.operand]
            if (p.op is Op.IN) != negated:  # in, or not(not_in): present and equal to one
                present = [] if p.op is Op.IN else [_cmp("$eq", f.kind, ABSENT)]
                return disj([*present, *(_cmp("$eq", f.key, k) for k in keys)])
            absent = [] if p.op is Op.IN else [_cmp("$neq", f.kind, ABSENT)]
            return conj([*absent, *(_cmp("$neq", f.key, k) for k in keys)])
        assert not isinstance(p.operand, tuple)
        if p.op is Op.EQ:
            return _cmp("$neq" if negated else "$eq", f.key, equality_key(p.operand))
        if p.op is Op.NE:  # same type, other value
            kind, key = kind_of(p.operand), equality_key(p.operand)
            if negated:
                return disj([_cmp("$neq", f.kind, kind), _cmp("$eq", f.key, key)])
            return conj([_cmp("$eq", f.kind, kind), _cmp("$neq", f.key, key)])
        op = _ORDER_OPS[p.op]
        if negated:  # not a number, or the opposite comparison
            return disj([_cmp("$neq", f.kind, "n"), _cmp(_NEGATED_COMPARISON[op], f.number, p.operand)])
        return _cmp(op, f.number, p.operand)

    # -- the whole ruleset ------------------------------------------------
    def compile(self) -> Compilation:
        definition: Json = {}
        rules: dict[str, CompiledRule] = {}
        never: list[CompiledRule] = []
        marker = _Leaf({MARKER_FIELD: MARKER})
        for offer in self.ruleset.offers.values():
            for index, rule in enumerate(offer.rules):
                compiled = CompiledRule(offer.id, rule.name, index, rule.schedule)
                expr = conj(
                    [
                        self.audiences(rule.audiences),
                        self.condition(rule.condition) if rule.condition is not None else TRUE,
                    ]
                )
                if expr is FALSE:
                    never.append(compiled)
                    continue
                alternatives = split_to_fit(expr)
                if len(alternatives) > MAX_ALTERNATIVES:
                    self.problems.append(
                        Problem(
                            rule.location,
                            f"offers[{offer.id}].eligibility[{rule.name}]",
                            f"too complex for the engine ({len(alternatives)} alternatives after splitting "
                            f"its and/or groups, at most {MAX_ALTERNATIVES}); split it into several rules",
                        )
                    )
                    continue
                for alternative in alternatives:
                    engine_name = f"r{len(rules)}"
                    definition[engine_name] = {"all": [{"m": to_json(conj([marker, alternative]))}]}
                    rules[engine_name] = compiled
        self.check_size()
        if self.problems:
            raise RulesetInvalid(self.problems)
        layout = FactLayout(
            audience_fields=dict(self.audience_fields),
            attribute_fields=dict(self.attribute_fields),
            features=tuple(self.features.values()),
        )
        return Compilation(definition, rules, layout, tuple(never))

    def check_size(self) -> None:
        needed = len(FIXED_FIELDS) + 3 * len(self.attribute_fields) + len(self.features)
        if needed + MIN_AUDIENCE_ROOM > MAX_FACT_PROPERTIES:
            self.problems.append(
                Problem(
                    Location(self.ruleset.source, 1),
                    "offers",
                    f"the ruleset tests {len(self.attribute_fields)} context attributes and "
                    f"{len(self.features)} distinct contains/starts_with operands: more than a "
                    f"durable_rules fact holds (3 fields per attribute, 1 per operand, at most "
                    f"{MAX_FACT_PROPERTIES - MIN_AUDIENCE_ROOM - len(FIXED_FIELDS)} in all)",
                )
            )


def compile_ruleset(ruleset: Ruleset) -> Compilation:
    """Compile the eligibility of every offer. Raises RulesetInvalid if it exceeds engine limits."""
    return _Compiler(ruleset).compile()
