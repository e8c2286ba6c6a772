"""Shapes that would exhaust the loader (decision/rules/yaml_guard.py): found without recursion, with a line.

Through the loader: tests/decision/rules/test_loader_fuzz.py.
"""

from __future__ import annotations

import yaml

from decision.rules.yaml_guard import MAX_ALIAS_EXPANSION, MAX_NESTING, shape_problem, too_deep_line


def composed(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    return node


def test_the_line_where_nesting_first_goes_too_deep() -> None:
    assert too_deep_line("a: 1\nb:\n  - " + "[" * 5 + "]" * 5 + "\n") == 0
    assert too_deep_line("a: 1\nb: " + "[" * 10 + "]" * 10 + "\n", limit=5) == 2
    assert too_deep_line("a: [\n") == 0  # invalid YAML: the parser reports it, not this check


def test_a_shape_within_the_limits_passes() -> None:
    assert shape_problem(composed("a: &x [1, 2]\nb: *x\nc: {d: [*x, *x]}\n")) is None


def test_nesting_beyond_the_limit_names_its_line() -> None:
    text = (
        "a: 1\nb:\n"
        + "".join("  " * n + "- \n" for n in range(1, 3))
        + "c: "
        + "[" * (MAX_NESTING + 1)
        + "]" * (MAX_NESTING + 1)
    )
    found = shape_problem(composed(text))
    assert found is not None and f"nested deeper than {MAX_NESTING} levels" in found[1]
    assert found[0] == text.count("\n") + 1


def test_aliases_expanding_beyond_the_limit_are_refused() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]  # 10^7 strings
    found = shape_problem(composed("\n".join(lines)))
    assert found is not None and f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes" in found[1]
