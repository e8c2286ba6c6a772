"""The YAML walker: typed values or one located problem per bad node, never an exception."""

from __future__ import annotations

import re

import yaml
from hypothesis import given
from hypothesis import strategies as st

from decision.rules.walker import Walker


def written(value: object) -> str:
    """A scalar as YAML writes it on one line."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")


SCALAR_TEXT = st.one_of(
    st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.text(max_size=20),
    ).map(written),
    # Unquoted, YAML reads these as timestamps, and some of them are no dates (PyYAML's date() raises).
    st.builds("{:04d}-{:02d}-{:02d}".format, st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99)),
)


def node_of(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    return node


@given(SCALAR_TEXT, st.integers(0, 5))
def test_integer_is_the_value_or_one_problem_on_its_line(scalar: str, blank_lines: int) -> None:
    w = Walker("w.yaml")
    got = w.integer(node_of("\n" * blank_lines + scalar), "offers[a].priority", -10, 10)
    if got is not None:
        assert not w.problems and -10 <= got <= 10
    else:
        [problem] = w.problems
        assert (problem.location.file, problem.location.line) == ("w.yaml", blank_lines + 1)
        assert problem.field == "offers[a].priority"
        assert problem.reason.startswith(("must be an integer, got ", "must be between -10 and 10, got "))


def test_mapping_reports_each_bad_key_at_its_line() -> None:
    text = "id: a\nid: b\ncolour: red\n3: x\n"
    w = Walker("m.yaml")
    fields = w.mapping(node_of(text), "offers[0]", frozenset({"id", "placements"}), frozenset({"id", "placements"}))
    assert fields is not None and set(fields) == {"id"}
    assert [str(p) for p in w.problems] == [
        "m.yaml:2: offers[0].id: duplicate key",
        "m.yaml:3: offers[0].colour: unknown field (expected one of: id, placements)",
        "m.yaml:4: offers[0]: keys must be strings, got 3",
        "m.yaml:1: offers[0].placements: required field is missing",
    ]


def test_unique_strings_keeps_the_first_of_duplicates() -> None:
    w = Walker("u.yaml")
    got = w.unique_strings(node_of("- web\n- app\n- web\n- 'no space'\n"), "channels", re.compile(r"[a-z]+"), "channel")
    assert got == ("web", "app")
    assert [str(p) for p in w.problems] == [
        "u.yaml:3: channels[2]: duplicate channel 'web'",
        "u.yaml:4: channels[3]: invalid channel 'no space'",
    ]


def test_choice_is_one_of_its_values_or_says_which_it_expected() -> None:
    w = Walker("c.yaml")
    assert w.choice(node_of("total"), "caps[0].scope", ("profile", "total"), "scope") == "total"
    assert w.choice(node_of("totl"), "caps[0].scope", ("profile", "total"), "scope") is None
    assert w.choice(node_of("[total]"), "caps[0].scope", ("profile", "total"), "scope") is None
    assert [str(p) for p in w.problems] == [
        "c.yaml:1: caps[0].scope: unknown scope 'totl' (did you mean 'total'?) (expected one of: profile, total)",
        "c.yaml:1: caps[0].scope: must be a string, got a list",
    ]


def test_named_entries_come_once_each_the_others_reported() -> None:
    w = Walker("n.yaml")
    text = "margin: x\nmargin: 2\n'bad name': 1\nprice: 3\n"
    got = [(name, w.value(value)) for _, name, value in w.named(node_of(text), "attributes", re.compile(r"\w+"), "")]
    assert got == [("margin", "x"), ("price", 3)]  # the first margin only, whatever its value
    assert [str(p) for p in w.problems] == [
        "n.yaml:2: attributes.margin: duplicate attribute",
        "n.yaml:3: attributes: invalid attribute name 'bad name'",
    ]
    assert list(w.named(node_of("[a]"), "attributes", re.compile(r"\w+"), "attribute name to type")) == []
    assert str(w.problems[-1]) == "n.yaml:1: attributes: must be a mapping of attribute name to type, got a list"
