"""The rule language as a JSON Schema (draft 2020-12), for editors and for checking files before the loader.

``decision schema`` prints it and ``docs/rules.schema.json`` is that output
(a test holds them equal). Names, limits, operators and enumerations are read
from the loader's own modules, so the schema cannot drift from them; the
tests feed the same files to both.

What a schema cannot say is left to the loader (``decision validate``):
references between parts (fallbacks, placements of offers, channels of
contact policies, declared attributes and their types — context and profile —,
placeholders of content templates), uniqueness of ids,
formula syntax, time zone names, schedule order, experiment weights adding up
to 0, and the nesting depth of conditions.
"""

from __future__ import annotations

import re
from typing import Any

from decision.rules import delivery, experiments, ranking
from decision.rules.catalog import MAX_ITEMS_LIMIT
from decision.rules.conditions import CONTEXT_PREFIX
from decision.rules.fields import (
    AUDIENCES,
    CAP,
    CONDITION_KEYWORDS,
    CONTACT_POLICY,
    EXPERIMENT,
    HOLDOUT_GROUP,
    NAMED_RULE,
    OFFER,
    OFFER_VARIANT,
    PLACEMENT,
    PLACEMENT_VARIANT,
    RANKING,
    RULE,
    RULESET,
    SCHEDULE,
    SETTINGS,
    SUPPRESS,
    Fields,
)
from decision.rules.patterns import (
    ATTRIBUTE_PATTERN,
    AUDIENCE_PATTERN,
    ID_PATTERN,
    PROFILE_SCOPE,
)
from decision.rules.templates import Escape, OnMissing
from decision.rules.types import (
    CUSTOM_PREFIX,
    DECISION,
    DISMISS,
    HOLDOUT,
    Allocation,
    AttrType,
    CapScope,
    HoldoutServes,
    Op,
    ProfileAttrType,
)
from inbound_common.codecs import ATTRIBUTE_NAME

DIALECT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]


def _anchored(pattern: re.Pattern[str]) -> str:
    """The loader uses fullmatch; a JSON Schema pattern matches anywhere unless anchored."""
    return f"^(?:{pattern.pattern})$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _closed(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _properties(names: tuple[str, ...], schemas: dict[str, Schema]) -> dict[str, Schema]:
    """Each name's schema, in the order of ``names``; refuses a name without a schema or a schema of no name."""
    if schemas.keys() != set(names):
        raise ValueError(f"field schemas {sorted(schemas)} do not match the field names {sorted(names)}")
    return {name: schemas[name] for name in names}


def _object(fields: Fields, schemas: dict[str, Schema], **extra: Any) -> Schema:
    """A mapping of the language: its allowed and required names are the loader's (decision.rules.fields)."""
    return _closed(_properties(fields.names, schemas), fields.required_names, **extra)


def _unique_list(items: Schema, description: str) -> Schema:
    return {"type": "array", "items": items, "minItems": 1, "uniqueItems": True, "description": description}


def _integer(low: int, high: int, description: str = "") -> Schema:
    schema: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


_DURATION = "^[1-9][0-9]{0,4}[hd]$"
_CALENDAR = ["day", "week", "month"]
_COUNTED_NAMES = list(delivery.COUNTED)
_CUSTOM = f"^{re.escape(CUSTOM_PREFIX)}(?:{ID_PATTERN.pattern})$"
# ISO 8601 with a time zone (the loader refuses a naive time).
# Context names starting with profile. are reserved: their keys would be profile attributes'.
_NOT_PROFILE = f"(?!{re.escape(PROFILE_SCOPE)})"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})$"


def _defs() -> dict[str, Schema]:
    scalar: Schema = {"type": ["string", "number", "boolean"]}
    operators: dict[Op, Schema] = {
        Op.EQ: scalar,
        Op.NE: scalar,
        Op.IN: {"type": "array", "items": scalar, "minItems": 1},
        Op.NOT_IN: {"type": "array", "items": scalar, "minItems": 1},
        Op.LT: {"type": "number"},
        Op.LE: {"type": "number"},
        Op.GT: {"type": "number"},
        Op.GE: {"type": "number"},
        Op.EXISTS: {"type": "boolean", "description": "true: the attribute is present; false: it is absent"},
        Op.CONTAINS: {**scalar, "description": "a member of a list attribute, or a substring of a string one"},
        Op.STARTS_WITH: {"type": "string"},
    }
    assert set(operators) == set(Op), "every operator of the language has a schema"
    period: Schema = {
        "description": f"{delivery.PERIOD_HELP} (missing: lifetime)",
        "anyOf": [{"enum": ["lifetime", *_CALENDAR]}, {"type": "string", "pattern": _DURATION}],
    }
    time_zone: Schema = {"type": "string", "description": "IANA time zone of a calendar period, e.g. Europe/Paris"}
    counts: Schema = {
        "description": "what is counted: decision (default), impression/display, click/interact, dismiss, "
        "custom:<event type>",
        "anyOf": [{"enum": _COUNTED_NAMES}, {"type": "string", "pattern": _CUSTOM}],
    }
    # A time zone goes with a calendar period only.
    calendar_time_zone: Schema = {
        "if": {"required": ["time_zone"]},
        "then": {"required": ["period"], "properties": {"period": {"enum": _CALENDAR}}},
    }
    ids = {"type": "string", "pattern": _anchored(ID_PATTERN)}
    weight = _integer(0, experiments.MAX_WEIGHT)
    return {
        "id": ids,
        "attribute": {"type": "string", "pattern": _anchored(ATTRIBUTE_PATTERN)},
        "context_attribute": {"type": "string", "pattern": f"^{_NOT_PROFILE}(?:{ATTRIBUTE_PATTERN.pattern})$"},
        "profile_attribute": {"type": "string", "pattern": _anchored(ATTRIBUTE_NAME)},
        "scalar": scalar,
        "formula": {
            "type": "string",
            "description": "numbers, context.<attr>, profile.<name>, offer.<attr>, + - * /, min, max, comparisons, "
            "parentheses",
        },
        "condition": {
            "description": "a list (all of), and / or (lists), not, or context.<attribute> / profile.<name>: "
            "{operator: operand}",
            # if/then/else rather than anyOf: an editor reports the error inside the branch, not "no match".
            "if": {"type": "array"},
            "then": {"items": _ref("condition"), "minItems": 1},
            "else": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "properties": _properties(
                    CONDITION_KEYWORDS,
                    {
                        "and": {"type": "array", "items": _ref("condition"), "minItems": 1},
                        "or": {"type": "array", "items": _ref("condition"), "minItems": 1},
                        "not": _ref("condition"),
                    },
                ),
                "patternProperties": {
                    f"^{re.escape(CONTEXT_PREFIX)}{_NOT_PROFILE}(?:{ATTRIBUTE_PATTERN.pattern})$": _ref("predicate"),
                    f"^{re.escape(PROFILE_SCOPE)}(?:{ATTRIBUTE_NAME.pattern})$": _ref("predicate"),
                },
                "additionalProperties": False,
            },
        },
        "predicate": _closed(
            {op.value: schema for op, schema in operators.items()},
            minProperties=1,
            description="operators on one attribute, all of which must hold",
        ),
        "audiences": _object(
            AUDIENCES,
            {
                name: _unique_list({"type": "string", "pattern": _anchored(AUDIENCE_PATTERN)}, meaning)
                for name, meaning in (
                    ("all", "member of every one"),
                    ("any", "member of at least one"),
                    ("none", "member of none"),
                )
            },
        ),
        "schedule": _object(
            SCHEDULE,
            {
                "start": {"type": "string", "pattern": _TIMESTAMP, "description": "inclusive, with a time zone"},
                "end": {"type": "string", "pattern": _TIMESTAMP, "description": "exclusive, with a time zone"},
            },
            minProperties=1,
        ),
        "rule": _object(
            RULE,
            {
                "name": _ref("id"),
                "audiences": _ref("audiences"),
                "conditions": _ref("condition"),
                "schedule": _ref("schedule"),
            },
        ),
        # The same fields as a rule (NAMED_RULE.names is RULE.names); only what is required differs.
        "named_rule": {"allOf": [_ref("rule")], "required": list(NAMED_RULE.required_names)},
        "cap": _object(
            CAP,
            {
                "max": _integer(1, delivery.MAX_TOTAL_CAP, f"per profile at most {delivery.MAX_PROFILE_CAP}"),
                "scope": {"enum": [s.value for s in CapScope], "description": "profile (default) or total"},
                "period": period,
                "time_zone": time_zone,
                "counts": counts,
            },
            allOf=[
                calendar_time_zone,
                {  # per profile (the default), counts are event times: small limits
                    "if": {"not": {"required": ["scope"], "properties": {"scope": {"const": "total"}}}},
                    "then": {"properties": {"max": {"maximum": delivery.MAX_PROFILE_CAP}}},
                    "else": {"properties": {"period": {"enum": ["lifetime", *_CALENDAR]}}},
                },
            ],
        ),
        "suppress": _object(
            SUPPRESS,
            {
                "after_dismissals": _integer(1, delivery.MAX_DISMISSALS),
                "for": {"type": "string", "pattern": _DURATION, "description": "<N>h or <N>d"},
                "within": {"type": "string", "pattern": _DURATION, "description": "<N>h or <N>d"},
            },
        ),
        "holdout": _object(
            HOLDOUT_GROUP,
            {"weight": weight, "serves": {"enum": [s.value for s in HoldoutServes]}},
        ),
        "ranking": _object(
            RANKING,
            {
                "strategy": {"enum": list(ranking.STRATEGIES), "description": "how the order is learned"},
                "metric": {
                    "allOf": [counts, {"not": {"enum": [DECISION, DISMISS]}}],
                    "description": "the success: an event (default click)",
                },
                "per": {
                    "enum": [name for name, meaning in delivery.COUNTED.items() if meaning in ranking.PER],
                    "description": "the trial: impression (default) or decision (a proposal)",
                },
                "min_exposure": _integer(0, ranking.MAX_MIN_EXPOSURE, "trials before learning (default 100)"),
                "days": _integer(1, ranking.MAX_DAYS, "outcome counters read, in days (default 30)"),
            },
            description="learned order: Thompson sampling over the outcome counters",
        ),
        "allocation": {
            "description": "weights (default), auto (Thompson sampling over the variants) or a ranking mapping",
            "anyOf": [{"enum": [a.value for a in Allocation]}, _ref("ranking")],
        },
        **{
            f"{kind}_experiment": _object(
                EXPERIMENT,
                {
                    "id": _ref("id"),
                    "variants": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": experiments.MAX_VARIANTS,
                        "items": _object(
                            variant,
                            {
                                "id": {"allOf": [_ref("id"), {"not": {"const": HOLDOUT}}]},
                                "weight": weight,
                                extra: extra_schema,
                            },
                        ),
                    },
                    "holdout": _ref("holdout"),
                    "allocation": _ref("allocation"),
                },
                description=description,
            )
            for kind, variant, extra, extra_schema, description in (
                ("offer", OFFER_VARIANT, "content", {"type": "object"}, "variants of the offer's content"),
                ("placement", PLACEMENT_VARIANT, "score", _ref("formula"), "variants of the placement's score formula"),
            )
        },
        "placement": _object(
            PLACEMENT,
            {
                "id": _ref("id"),
                "channels": _unique_list(_ref("id"), "channels that may ask for it"),
                "max_items": _integer(1, MAX_ITEMS_LIMIT, "items per decision (default 1)"),
                "fallback": {**_ref("id"), "description": "the offer served when no other is"},
                "description": {"type": "string"},
                "score": _ref("formula"),
                "experiment": _ref("placement_experiment"),
                "ranking": _ref("ranking"),
            },
        ),
        "offer": _object(
            OFFER,
            {
                "id": _ref("id"),
                "placements": _unique_list(_ref("id"), "placements it may fill"),
                "priority": _integer(-1_000_000, 1_000_000, "higher wins; ties go to the offer written first"),
                "content": {
                    "type": "object",
                    "description": "sent as JSON in responses; strings may hold {{context.<attr>}} / "
                    '{{profile.<name> | default: "..."}} placeholders',
                },
                "escape": {"enum": [e.value for e in Escape], "description": "of placeholder values (default none)"},
                "on_missing": {
                    "enum": [m.value for m in OnMissing],
                    "description": "a placeholder without a value nor a default: blank (default) writes nothing, "
                    "skip does not propose the offer",
                },
                "eligibility": {
                    "description": "one rule, or a list of named rules any of which makes the offer eligible",
                    "if": {"type": "array"},
                    "then": {"items": _ref("named_rule"), "minItems": 1},
                    "else": _ref("rule"),
                },
                "description": {"type": "string"},
                "attributes": {
                    "type": "object",
                    "description": "numbers a score formula reads as offer.<name>",
                    "maxProperties": delivery.MAX_OFFER_ATTRIBUTES,
                    "propertyNames": _ref("attribute"),
                    "additionalProperties": {"type": "number"},
                },
                "caps": {"type": "array", "items": _ref("cap"), "minItems": 1},
                "suppress": _ref("suppress"),
                "experiment": _ref("offer_experiment"),
            },
        ),
        "contact_policy": _object(
            CONTACT_POLICY,
            {
                "id": _ref("id"),
                "channels": _unique_list(_ref("id"), "channels it limits (missing: all)"),
                "placements": _unique_list(_ref("id"), "placements it limits (missing: all)"),
                "max": _integer(1, delivery.MAX_PROFILE_CAP, "messages per profile per period"),
                "period": period,
                "time_zone": time_zone,
                "counts": {"allOf": [counts, {"not": {"const": DISMISS}}]},
                "description": {"type": "string"},
            },
            anyOf=[{"required": ["channels"]}, {"required": ["placements"]}],
            allOf=[calendar_time_zone],
        ),
    }


def rules_schema() -> Schema:
    """The JSON Schema of a ruleset file."""
    return {
        "$schema": DIALECT,
        "title": "Inbound Decisioning ruleset",
        "description": "Placements, offers and their eligibility rules and delivery controls "
        "(decision validate checks what a schema cannot: references, unique ids, formulas).",
        **_object(
            RULESET,
            {
                "version": {**_ref("id"), "description": "named in every response (default: sha256 of the file)"},
                "settings": _object(
                    SETTINGS,
                    {
                        "allow_duplicate_propositions": {"type": "boolean"},
                        "time_zone": {"type": "string", "description": "of calendar periods (default UTC)"},
                    },
                ),
                "attributes": {
                    "type": "object",
                    "description": "declared context attributes and their types",
                    "propertyNames": _ref("context_attribute"),
                    "additionalProperties": {"enum": [t.value for t in AttrType]},
                },
                "profile_attributes": {
                    "type": "object",
                    "description": "profile attributes (stored with the profile) rules read as profile.<name>",
                    "propertyNames": _ref("profile_attribute"),
                    "additionalProperties": {"enum": [t.value for t in ProfileAttrType]},
                },
                "placements": {"type": "array", "items": _ref("placement"), "minItems": 1},
                "offers": {"type": "array", "items": _ref("offer"), "minItems": 1},
                "contact_policies": {"type": "array", "items": _ref("contact_policy"), "minItems": 1},
            },
        ),
        "$defs": _defs(),
    }
