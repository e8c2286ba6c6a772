"""Fuzzing the rules loader: random bytes, random YAML in the rule language's words, mutated real files.

Whatever the file holds, ``parse`` returns a list of located problems (``file:line: field: reason``)
and never raises; a ruleset it accepts compiles or is refused with RulesetInvalid, nothing else.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.rules.compiler import compile_ruleset
from decision.rules.errors import RulesetInvalid, Severity
from decision.rules.loader import parse

FILE = "fuzz.yaml"
EXAMPLES = int(os.environ.get("LOADER_FUZZ_EXAMPLES", "200"))
RETAIL = (Path(__file__).resolve().parents[3] / "examples" / "retail" / "rules.yaml").read_bytes()
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = [
    "version", "settings", "allow_duplicate_propositions", "attributes", "placements", "offers", "id",
    "channels", "max_items", "fallback", "priority", "content", "eligibility", "name", "audiences", "all",
    "any", "none", "conditions", "and", "or", "not", "schedule", "start", "end", "description",
    "context.cart_value", "context.device", "context.tags", "eq", "ne", "in", "not_in", "lt", "le", "gt",
    "ge", "exists", "contains", "starts_with", "number", "string", "bool", "list", "web", "mobile", "banner",
]  # fmt: skip
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2026-11-01T00:00:00+01:00", "2026-13-45", "1.0e-07", "0x1F", "~", "null", "*", "&a"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.one_of(st.sampled_from(WORDS), scalars), inner),
    max_leaves=30,
)


def check(data: bytes) -> None:
    """The loader's contract on any input."""
    ruleset, problems = parse(data, FILE)
    # YAML breaks lines at \r, \x85, \u2028 and \u2029 too, and locations count its lines.
    text = data.decode("utf-8", errors="replace")
    lines = len(re.split("\r\n|[\n\r\x85\u2028\u2029]", text)) + 1
    for problem in problems:
        assert problem.location.file == FILE
        assert 0 <= problem.location.line <= lines, problem
        assert problem.field and problem.reason, problem
    errors = [p for p in problems if p.severity is Severity.ERROR]
    assert (ruleset is None) == bool(errors), problems
    if ruleset is not None:
        try:
            compile_ruleset(ruleset)
        except RulesetInvalid as exc:
            assert exc.problems and all(p.reason for p in exc.problems)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(document=documents)
def test_random_documents_in_the_rule_language(document: object) -> None:
    check(yaml.safe_dump(document, allow_unicode=True).encode())


@FUZZ
@given(document=st.dictionaries(st.sampled_from(WORDS[:6]), documents, min_size=1))
def test_random_documents_with_ruleset_sections(document: object) -> None:
    check(yaml.safe_dump(document, allow_unicode=True).encode())


def mutate(rnd: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rnd.randint(1, 5)):
        index = rnd.randrange(len(lines))
        edit = rnd.randrange(6)
        if edit == 0:
            del lines[index]
        elif edit == 1:
            lines.insert(index, lines[rnd.randrange(len(lines))])
        elif edit == 2:  # shift the indentation: structure changes
            lines[index] = b" " * rnd.choice([1, 2, 4]) + lines[index] if rnd.random() < 0.5 else lines[index].lstrip()
        elif edit == 3 and lines[index]:  # replace a character
            line = bytearray(lines[index])
            line[rnd.randrange(len(line))] = rnd.choice(b":-[]{}&*!|>#'\"0aZ \t\x00\xff")
            lines[index] = bytes(line)
        elif edit == 4:  # swap a value for a word of another type
            key, sep, _ = lines[index].partition(b": ")
            if sep:
                lines[index] = key + sep + rnd.choice([b"[]", b"{}", b"-1", b"1.5", b"true", b"~", b"x", b"9" * 30])
        else:
            lines[index] = lines[index][: rnd.randrange(len(lines[index]) + 1)]
    return b"\n".join(lines)


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_mutated_example_rulesets(rnd: random.Random) -> None:
    check(mutate(rnd, RETAIL))


def test_alias_bombs_self_containing_aliases_and_deep_nesting_are_refused_with_a_line() -> None:
    # 10^9 strings once expanded: without the check, serializing the content would exhaust memory.
    laughs = ["      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    head = "version: v\nplacements: [{id: banner, channels: [web], max_items: 1, fallback: fb}]\noffers:\n"
    bomb = head + "  - id: fb\n    placements: [banner]\n    content:\n" + "\n".join(laughs)
    cases = {
        bomb: "aliases expand to more than",
        head + "  - &a {id: fb, placements: [banner], content: {x: *a}}\n": "an alias that contains itself",
        "version: v\noffers: " + "[" * 1000 + "]" * 1000: "nested deeper than 64 levels",
        "version: v\noffers:\n" + "  " + "[" * 100 + "]" * 100: "nested deeper than 64 levels",
    }
    for text, reason in cases.items():
        ruleset, problems = parse(text.encode(), FILE)
        assert ruleset is None
        assert [p.location.line > 0 and reason in p.reason for p in problems] == [True], problems
