"""The durable_rules engine wrapper: bounded memory, large rules split to fit the engine's limits."""

from __future__ import annotations

import random

import orjson
import pytest

from decision.rules import engine, reference
from decision.rules.compiler import MAX_GROUPS_PER_RULE, compile_ruleset
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.types import Ruleset

HEAD = "placements: [{id: p, channels: [web], max_items: 50, fallback: f}]\noffers:\n  - {id: f, placements: [p]}\n"


def load(text: str) -> Ruleset:
    ruleset, problems = parse(text.encode(), "t.yaml")
    assert ruleset is not None, [str(p) for p in problems]
    return ruleset


def json_groups(node: object) -> int:
    """$and/$or groups in an engine rule definition."""
    if isinstance(node, dict):
        return sum((key in ("$and", "$or")) + json_groups(value) for key, value in node.items())
    if isinstance(node, list):
        return sum(json_groups(item) for item in node)
    return 0


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_memory_stays_bounded_over_many_distinct_profiles() -> None:
    # durable_rules keeps state per session id and fails after 1,024 of them; the
    # engine wrapper uses one session and retracts every fact, so the number of
    # distinct profiles (here: distinct membership sets) never matters.
    offers = "".join(
        f"  - {{id: o{i}, placements: [p], eligibility: {{audiences: {{any: [a{i}, a{i + 1}]}}}}}}\n" for i in range(40)
    )
    ruleset = load(HEAD + offers)
    compiled = compile_and_load(ruleset)
    rng = random.Random(7)

    def one(profile: int) -> None:
        audiences = {f"a{rng.randrange(45)}" for _ in range(rng.randrange(6))} | {f"profile-{profile}"}
        assert compiled.eligible(audiences, {}, 0.0) == reference.eligible(ruleset, audiences, {}, 0.0)

    for profile in range(500):
        one(profile)
    warm = rss_kib()
    for profile in range(500, 5000):
        one(profile)
    assert rss_kib() - warm < 4 * 1024, "memory grew with the number of distinct profiles"


def test_rules_beyond_the_engines_group_limit_are_split() -> None:
    # 12 alternatives, each an and with a nested or: ~37 $and/$or groups in one rule.
    alternatives = "".join(
        f"          - and: [{{context.n: {{ge: {i}}}}}, "
        f"{{or: [{{context.s: {{eq: s{i}}}}}, {{context.b: {{eq: true}}}}]}}]\n"
        for i in range(12)
    )
    ruleset = load(
        HEAD + "  - id: big\n    placements: [p]\n    eligibility:\n      conditions:\n        - or:\n" + alternatives
    )
    compilation = compile_ruleset(ruleset)
    assert len(compilation.rules) > 1
    for name, definition in compilation.definition.items():  # type: ignore[union-attr]
        assert json_groups(definition) <= MAX_GROUPS_PER_RULE, name
    compiled = compile_and_load(ruleset)
    rng = random.Random(3)
    for _ in range(300):
        context: dict[str, object] = {}
        if rng.random() < 0.8:
            context["n"] = float(rng.randrange(-2, 14))
        if rng.random() < 0.8:
            context["s"] = f"s{rng.randrange(14)}"
        if rng.random() < 0.5:
            context["b"] = rng.random() < 0.5
        assert compiled.eligible(set(), context, 0.0) == reference.eligible(ruleset, set(), context, 0.0), context


def test_a_rule_is_held_only_while_its_schedule_includes_the_present() -> None:
    # The engine holds the rules active in the present period; a request in another period (later, or
    # earlier: clocks are not monotonic) rebuilds them, and the answers stay the reference's.
    ruleset = load(
        HEAD + "  - {id: o, placements: [p], eligibility: {schedule: "
        '{start: "2030-01-01T00:00:00Z", end: "2030-02-01T00:00:00Z"}}}\n'
        "  - {id: always, placements: [p]}\n"
    )
    compiled = compile_and_load(ruleset)
    start, end = 1893456000.0, 1896134400.0
    for now in (start - 0.001, start, start + 5, end - 0.001, end, end + 1, start - 50, start + 1, end):
        assert compiled.eligible(set(), {}, now) == reference.eligible(ruleset, set(), {}, now), now
        assert ("o" in compiled.eligible(set(), {}, now, ["p"])) is (start <= now < end), now


def test_one_assert_per_request_and_engine_rulesets_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    ruleset = load(
        "placements:\n"
        + "".join(f"  - {{id: p{i}, channels: [web], max_items: 5, fallback: f{i}}}\n" for i in range(4))
        + "offers:\n"
        + "".join(f"  - {{id: f{i}, placements: [p{i}]}}\n" for i in range(4))
        + "".join(
            f"  - {{id: o{i}, placements: [p{i % 4}, p{(i + 1) % 4}], "
            f"eligibility: {{audiences: {{any: [a{i % 3}]}}}}}}\n"
            for i in range(12)
        )
    )
    monkeypatch.setattr(engine, "MAX_COMBINATIONS", 3)
    asserts = []
    real_assert = engine._dre.assert_fact

    def counted(handle: int, fact: str) -> object:
        asserts.append(handle)
        return real_assert(handle, fact)

    monkeypatch.setattr(engine._dre, "assert_fact", counted)
    compiled = compile_and_load(ruleset)
    rng = random.Random(5)
    for _ in range(200):
        wanted = rng.sample([f"p{i}" for i in range(4)], rng.randint(1, 4))
        audiences = {f"a{rng.randrange(3)}"}
        expected = reference.eligible(ruleset, audiences, {}, 0.0)
        restricted = {o: r for o, r in expected.items() if set(ruleset.offers[o].placements) & set(wanted)}
        before = len(asserts)
        assert compiled.eligible(audiences, {}, 0.0, wanted) == restricted, wanted
        assert len(asserts) - before == 1  # one fact asserted, whatever the placements
        assert compiled.held <= 3


def test_a_fact_holds_only_the_fields_the_rules_of_its_placements_test(monkeypatch: pytest.MonkeyPatch) -> None:
    ruleset = load(
        "placements:\n  - {id: p0, channels: [web], fallback: f0}\n  - {id: p1, channels: [web], fallback: f1}\n"
        "offers:\n  - {id: f0, placements: [p0]}\n  - {id: f1, placements: [p1]}\n"
        "  - {id: o0, placements: [p0], eligibility: {audiences: {any: [a0]}, conditions: {context.k0: {eq: 1}}}}\n"
        "  - {id: o1, placements: [p1], eligibility: {audiences: {any: [a1]}, conditions: {context.k1: {eq: 1}}}}\n"
    )
    asserted: list[dict[str, object]] = []
    real_assert = engine._dre.assert_fact

    def seen(handle: int, fact: str) -> object:
        asserted.append(orjson.loads(fact))
        return real_assert(handle, fact)

    monkeypatch.setattr(engine._dre, "assert_fact", seen)
    compiled = compile_and_load(ruleset)
    layout = compiled.compilation.layout
    a0, a1 = layout.audience_fields["a0"], layout.audience_fields["a1"]
    k0, k1 = layout.attribute_fields["k0"], layout.attribute_fields["k1"]
    context = {"k0": 1.0, "k1": 1.0}
    assert compiled.eligible({"a0", "a1"}, context, 0.0, ["p0"]) == {"f0": "f0", "o0": "o0"}
    assert compiled.eligible({"a0", "a1"}, context, 0.0, ["p1"]) == {"f1": "f1", "o1": "o1"}
    assert len(compiled.eligible({"a0", "a1"}, context, 0.0)) == 4
    first, second, both = (set(fact) for fact in asserted)
    assert {a0, k0.key} <= first and not {a1, k1.kind, k1.key, k1.number} & first
    assert {a1, k1.key} <= second and not {a0, k0.kind, k0.key, k0.number} & second
    assert {a0, a1, k0.key, k1.key} <= both
