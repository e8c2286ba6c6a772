"""The rules JSON Schema agrees with the loader: on the examples, on random valid rulesets, on broken ones.

Where the loader refuses for a reason a schema cannot express (references between parts, unique ids,
formula syntax, time zone names...), the case is listed in SEMANTIC and the test asserts exactly that:
the loader refuses it and the schema lets it through.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.cli.authoring import schema_text
from decision.rules.loader import parse
from decision.rules.schema import rules_schema
from tests.decision.rules.strategies import ruleset_documents

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = jsonschema.Draft202012Validator(rules_schema())
PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Loader(yaml.SafeLoader):
    """YAML as an editor's language server reads it: timestamps stay strings (the loader reads their text)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def schema_errors(document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def loader_errors(document: Any) -> list[str]:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    ruleset, problems = parse(text.encode(), "t.yaml")
    return [] if ruleset is not None else [str(p) for p in problems]


def test_the_committed_schema_is_what_the_command_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "decision.cli", "schema"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert printed == schema_text()
    assert (ROOT / "docs" / "rules.schema.json").read_text(encoding="utf-8") == printed, (
        "docs/rules.schema.json is stale: decision schema > docs/rules.schema.json"
    )


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(orjson.loads(schema_text()))


def test_every_example_ruleset_validates() -> None:
    examples = sorted(ROOT.glob("examples/**/rules*.yaml"))
    assert examples
    for path in examples:
        document = _document(path.read_text(encoding="utf-8"))
        assert schema_errors(document) == [], path
        assert parse(path.read_bytes(), str(path))[0] is not None, path


def _document(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader


@PROPERTIES
@given(ruleset_documents())
def test_random_valid_rulesets_validate(text: str) -> None:
    document = _document(text)
    assert loader_errors(document) == []
    assert schema_errors(document) == []


# -- structural mutations: both refuse --------------------------------------------


Path_ = tuple[str | int, ...]


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every node with its path, except inside free-form content."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "content":
                yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _at(document: Any, path: Path_) -> Any:
    for step in path:
        document = document[step]
    return document


def _required_fields(document: Any) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    for index, placement in enumerate(document["placements"]):
        found += [(("placements", index), key) for key in ("id", "channels", "fallback") if key in placement]
    for index, offer in enumerate(document["offers"]):
        found += [(("offers", index), key) for key in ("id", "placements")]
        if isinstance(offer.get("eligibility"), list):
            found += [(("offers", index, "eligibility", i), "name") for i in range(len(offer["eligibility"]))]
    return found


@st.composite
def broken_documents(draw: st.DrawFn) -> tuple[str, Any]:
    document = _document(draw(ruleset_documents(max_offers=4)))
    kind = draw(st.sampled_from(["unknown key", "wrong type", "missing required field", "bad operator"]))
    nodes = list(_walk(document))
    if kind == "unknown key":  # a space fits no field, attribute or condition name
        path, mapping = draw(st.sampled_from([(p, n) for p, n in nodes if isinstance(n, dict)]))
        mapping["no such field"] = 1
    elif kind == "wrong type":  # no scalar of the language may be a mapping
        path, _ = draw(st.sampled_from([(p, n) for p, n in nodes if not isinstance(n, dict | list)]))
        _at(document, path[:-1])[path[-1]] = {"x": 1}
    elif kind == "missing required field":
        path, key = draw(st.sampled_from(_required_fields(document)))
        del _at(document, path)[key]
    else:
        predicates = [(p, n) for p, n in nodes if p and str(p[-1]).startswith("context.")]
        if not predicates:
            document["offers"][-1]["eligibility"] = {"conditions": {"context.x": {"equals": 1}}}
            path = ("offers", len(document["offers"]) - 1, "eligibility")
        else:
            path, predicate = draw(st.sampled_from(predicates))
            predicate["equals"] = predicate.popitem()[1]
    return f"{kind} at {'/'.join(map(str, path))}", document


@PROPERTIES
@given(broken_documents())
def test_structural_mistakes_are_refused_by_both(case: tuple[str, Any]) -> None:
    what, document = case
    assert loader_errors(document), f"the loader accepts {what}"
    assert schema_errors(document), f"the schema accepts {what}"


# -- crafted cases ------------------------------------------------------------------

BASE: dict[str, Any] = {
    "version": "v1",
    "settings": {"allow_duplicate_propositions": False, "time_zone": "Europe/Paris"},
    "attributes": {"cart": "number", "device": "string", "tags": "list"},
    "placements": [
        {
            "id": "banner",
            "channels": ["web"],
            "max_items": 2,
            "fallback": "fb",
            "score": "offer.margin",
            "ranking": {"strategy": "thompson", "metric": "click", "per": "display", "min_exposure": 50, "days": 14},
        },
    ],
    "offers": [
        {"id": "fb", "placements": ["banner"], "content": {"title": "hello"}},
        {
            "id": "sale",
            "placements": ["banner"],
            "priority": 5,
            "attributes": {"margin": 3},
            "eligibility": [
                {
                    "name": "big_cart",
                    "audiences": {"any": ["vip"], "none": ["churned"]},
                    "conditions": [{"context.cart": {"gt": 100}}, {"not": {"context.device": {"eq": "ios"}}}],
                    "schedule": {"start": "2026-01-01T00:00:00+01:00", "end": "2027-01-01T00:00:00Z"},
                }
            ],
            "caps": [{"max": 2, "period": "day"}, {"max": 10000, "scope": "total", "period": "month"}],
            "suppress": {"after_dismissals": 2, "for": "30d", "within": "90d"},
            "experiment": {
                "id": "copy",
                "variants": [{"id": "a", "weight": 1}, {"id": "b", "weight": 1, "content": {"title": "x"}}],
                "holdout": {"weight": 1, "serves": "nothing"},
                "allocation": "auto",
            },
        },
    ],
    "contact_policies": [{"id": "daily", "channels": ["web"], "max": 3, "period": "day", "counts": "impression"}],
}

_DELETE = object()


@dataclass(frozen=True)
class Mutation:
    """Set (or delete) the value at ``path``; the schema must complain there or in the mapping holding it."""

    path: Path_
    value: Any

    def __call__(self, document: dict[str, Any]) -> None:
        parent = _at(document, self.path[:-1])
        if self.value is _DELETE:
            del parent[self.path[-1]]
        else:
            parent[self.path[-1]] = self.value


def _set(path: Path_, value: Any) -> Mutation:
    return Mutation(path, value)


def _delete(path: Path_) -> Mutation:
    return Mutation(path, _DELETE)


def _nested_nots(depth: int) -> dict[str, Any]:
    condition: dict[str, Any] = {"context.cart": {"gt": 1}}
    for _ in range(depth):
        condition = {"not": condition}
    return condition


SALE = ("offers", 1)
RULE = (*SALE, "eligibility", 0)
CAP = (*SALE, "caps", 0)
POLICY = ("contact_policies", 0)

# Mistakes a schema can state: both refuse.
STRUCTURAL: dict[str, Mutation] = {
    "unknown top-level key": _set(("offer",), []),
    "unknown offer key": _set((*SALE, "prio"), 1),
    "unknown operator": _set((*RULE, "conditions", 0), {"context.cart": {"greater": 1}}),
    "two keys in one condition": _set((*RULE, "conditions", 0), {"and": [], "or": []}),
    "empty and": _set((*RULE, "conditions", 0), {"and": []}),
    "condition on a bad attribute name": _set((*RULE, "conditions", 0), {"context.1x": {"gt": 1}}),
    "empty predicate": _set((*RULE, "conditions", 0), {"context.cart": {}}),
    "number operator with a string": _set((*RULE, "conditions", 0), {"context.cart": {"gt": "1"}}),
    "in with a scalar": _set((*RULE, "conditions", 0), {"context.device": {"in": "ios"}}),
    "exists with a string": _set((*RULE, "conditions", 0), {"context.device": {"exists": "yes"}}),
    "null operand": _set((*RULE, "conditions", 0), {"context.device": {"eq": None}}),
    "priority as a string": _set((*SALE, "priority"), "high"),
    "priority out of range": _set((*SALE, "priority"), 2_000_000),
    "max_items 0": _set(("placements", 0, "max_items"), 0),
    "channels empty": _set(("placements", 0, "channels"), []),
    "channels repeated": _set(("placements", 0, "channels"), ["web", "web"]),
    "bad offer id": _set((*SALE, "id"), "has space"),
    "placement without fallback": _delete(("placements", 0, "fallback")),
    "offer without placements": _delete((*SALE, "placements")),
    "named rule without a name": _delete((*RULE, "name")),
    "no offers": _delete(("offers",)),
    "empty placements": _set(("placements",), []),
    "unknown attribute type": _set(("attributes", "cart"), "integer"),
    "settings as a list": _set(("settings",), []),
    "allow_duplicate_propositions as a string": _set(("settings", "allow_duplicate_propositions"), "no"),
    "empty schedule": _set((*RULE, "schedule"), {}),
    "naive timestamp": _set((*RULE, "schedule", "start"), "2026-01-01T00:00:00"),
    "audience list empty": _set((*RULE, "audiences", "any"), []),
    "unknown audience key": _set((*RULE, "audiences", "some"), ["vip"]),
    "content as a list": _set((*SALE, "content"), ["x"]),
    "offer attribute as a string": _set((*SALE, "attributes", "margin"), "3"),
    "cap without max": _delete((*CAP, "max")),
    "cap max 0": _set((*CAP, "max"), 0),
    "per-profile cap over its limit": _set((*CAP, "max"), 1001),
    "unknown cap scope": _set((*CAP, "scope"), "global"),
    "unknown period": _set((*CAP, "period"), "year"),
    "rolling period of 0 days": _set((*CAP, "period"), "0d"),
    "rolling total cap": _set((*SALE, "caps", 1, "period"), "7d"),
    "time zone on a lifetime cap": _set(CAP, {"max": 1, "time_zone": "UTC"}),
    "time zone on a rolling cap": _set(CAP, {"max": 1, "period": "12h", "time_zone": "UTC"}),
    "unknown counted event": _set((*CAP, "counts"), "view"),
    "bad custom event": _set((*CAP, "counts"), "custom:"),
    "suppress without for": _delete((*SALE, "suppress", "for")),
    "suppress duration in minutes": _set((*SALE, "suppress", "for"), "30m"),
    "too many dismissals": _set((*SALE, "suppress", "after_dismissals"), 101),
    "experiment without variants": _delete((*SALE, "experiment", "variants")),
    "variant named holdout": _set((*SALE, "experiment", "variants", 0, "id"), "holdout"),
    "variant weight negative": _set((*SALE, "experiment", "variants", 0, "weight"), -1),
    "score in an offer variant": _set((*SALE, "experiment", "variants", 0, "score"), "1"),
    "unknown holdout serves": _set((*SALE, "experiment", "holdout", "serves"), "other"),
    "score as a number": _set(("placements", 0, "score"), 1),
    "policy without channels or placements": _delete((*POLICY, "channels")),
    "policy counting dismissals": _set((*POLICY, "counts"), "dismiss"),
    "policy without max": _delete((*POLICY, "max")),
    "policy max over its limit": _set((*POLICY, "max"), 1001),
    "empty contact_policies": _set(("contact_policies",), []),
    "unknown ranking strategy": _set(("placements", 0, "ranking", "strategy"), "ucb"),
    "ranking without strategy": _delete(("placements", 0, "ranking", "strategy")),
    "ranking on dismissals": _set(("placements", 0, "ranking", "metric"), "dismiss"),
    "ranking per click": _set(("placements", 0, "ranking", "per"), "click"),
    "ranking over 90 days": _set(("placements", 0, "ranking", "days"), 91),
    "unknown ranking key": _set(("placements", 0, "ranking", "window"), 7),
    "unknown allocation": _set((*SALE, "experiment", "allocation"), "random"),
    "allocation mapping without strategy": _set((*SALE, "experiment", "allocation"), {"metric": "click"}),
    "unknown profile attribute type": _set(("profile_attributes",), {"tier": "integer"}),
    "profile attribute name with a dot": _set(("profile_attributes",), {"a.b": "string"}),
    "context attribute named profile.": _set(("attributes", "profile.tier"), "string"),
    "condition on context.profile.": _set((*RULE, "conditions", 0), {"context.profile.tier": {"eq": "gold"}}),
    "unknown escape": _set((*SALE, "escape"), "xml"),
    "unknown on_missing": _set((*SALE, "on_missing"), "drop"),
}

# Refusals that need the whole ruleset, a parser or YAML's types: the schema cannot express them.
SEMANTIC: dict[str, Mutation] = {
    "fallback offer does not exist": _set(("placements", 0, "fallback"), "nope"),
    "offer in an unknown placement": _set((*SALE, "placements"), ["banner", "nope"]),
    "duplicate offer id": _set((*SALE, "id"), "fb"),
    "duplicate rule name": _set((*SALE, "eligibility"), [{"name": "r"}, {"name": "r"}]),
    "duplicate variant id": _set((*SALE, "experiment", "variants", 1, "id"), "a"),
    "undeclared attribute": _set((*RULE, "conditions", 0), {"context.other": {"gt": 1}}),
    "undeclared profile attribute": _set((*RULE, "conditions", 0), {"profile.tier": {"eq": "gold"}}),
    "template reading an undeclared name": _set((*SALE, "content"), {"title": "Hi {{profile.first_name}}"}),
    "operand of another type than declared": _set((*RULE, "conditions", 0), {"context.device": {"eq": 1}}),
    "list attribute compared with eq": _set((*RULE, "conditions", 0), {"context.tags": {"eq": "a"}}),
    "audience required and excluded": _set((*RULE, "audiences"), {"all": ["vip"], "none": ["vip"]}),
    "schedule ends before it starts": _set((*RULE, "schedule", "end"), "2025-01-01T00:00:00Z"),
    "conditions nested too deep": _set((*RULE, "conditions"), _nested_nots(10)),
    "formula syntax": _set(("placements", 0, "score"), "offer.margin *"),
    "formula reads an attribute no offer has": _set(("placements", 0, "score"), "offer.nope"),
    "unknown time zone": _set(("settings", "time_zone"), "Mars/Olympus"),
    "rolling period over 400 days": _set((*CAP, "period"), "401d"),
    "weights add up to 0": _set((*SALE, "experiment"), {"id": "e", "variants": [{"id": "a", "weight": 0}]}),
    "experiment id used twice": _set(
        ("placements", 0, "experiment"), {"id": "copy", "variants": [{"id": "a", "weight": 1}]}
    ),
    "fallback offer with caps": _set(("offers", 0, "caps"), [{"max": 1}]),
    "policy on an unknown channel": _set((*POLICY, "channels"), ["sms"]),
    # JSON has one number type: for JSON Schema 6.0 is an integer; YAML tells 6.0 from 6 and the loader wants 6.
    "a whole float where an integer is expected": _set((*SALE, "priority"), 6.0),
    "ranking metric the same as per": _set(("placements", 0, "ranking", "metric"), "impression"),
}


def _mutated(mutation: Mutation) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    mutation(document)
    return document


def test_the_base_document_is_valid_for_both() -> None:
    assert loader_errors(BASE) == []
    assert schema_errors(BASE) == []


@pytest.mark.parametrize("case", sorted(STRUCTURAL))
def test_a_mistake_the_schema_can_state_is_refused_by_both(case: str) -> None:
    mutation = STRUCTURAL[case]
    document = _mutated(mutation)
    assert loader_errors(document), f"the loader accepts: {case}"
    located = [tuple(e.absolute_path) for e in VALIDATOR.iter_errors(document)]
    assert located, f"the schema accepts: {case}"
    assert any(where[: len(mutation.path) - 1] == mutation.path[:-1] for where in located), located


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_a_semantic_refusal_is_the_loader_s_alone(case: str) -> None:
    """Not a schema's business: documented here so that a change of either side shows."""
    document = _mutated(SEMANTIC[case])
    assert loader_errors(document), f"the loader accepts: {case}"
    assert schema_errors(document) == []
