"""The durable_rules compilation decides exactly what the plain reference evaluation decides."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.rules import reference
from decision.rules.compiler import compile_ruleset, fnv1a32
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from tests.decision.rules.strategies import requests, ruleset_documents


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=ruleset_documents(), batch=st.lists(requests(), min_size=1, max_size=8))
def test_durable_rules_agrees_with_reference(document: str, batch: list) -> None:
    ruleset, problems = parse(document.encode(), "random.yaml")
    assert ruleset is not None, "\n".join(map(str, problems))
    compiled = compile_and_load(ruleset)
    placement_ids = list(ruleset.placements)
    for index, (audiences, context, now) in enumerate(batch):
        expected = reference.eligible(ruleset, audiences, context, now)
        assert compiled.eligible(audiences, context, now) == expected, (audiences, context, now)
        # Restricted to some placements: exactly the reference's answer for those placements' offers.
        wanted = placement_ids[index % len(placement_ids) :][:2]
        restricted = {o: r for o, r in expected.items() if any(p in ruleset.offers[o].placements for p in wanted)}
        assert compiled.eligible(audiences, context, now, wanted) == restricted, (wanted, audiences, context, now)


def test_field_names_never_collide_in_the_engines_hash() -> None:
    # durable_rules compares property names by FNV-1a hash only.
    ruleset, _ = parse(
        b"placements: [{id: p, channels: [web], fallback: f}]\n"
        b"offers:\n  - {id: f, placements: [p]}\n"
        + b"".join(
            f"  - {{id: o{i}, placements: [p], eligibility: {{audiences: {{any: [aud{i}]}}, "
            f"conditions: {{context.k{i % 60}: {{eq: {i}}}}}}}}}\n".encode()
            for i in range(150)
        ),
        "big.yaml",
    )
    assert ruleset is not None
    compilation = compile_ruleset(ruleset)
    layout = compilation.layout
    attribute_fields = [f for a in layout.attribute_fields.values() for f in (a.kind, a.key, a.number)]
    names = [*layout.audience_fields.values(), *attribute_fields, "id", "sid", "t", "now", "$s"]
    assert len({fnv1a32(n) for n in names}) == len(names)


def test_fnv1a32_matches_published_vectors() -> None:
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968
