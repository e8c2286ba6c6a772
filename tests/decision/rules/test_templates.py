"""The content template renderer: parses what it promises, never raises on any input, stays bounded."""

from __future__ import annotations

import html

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decision.rules.templates import (
    MAX_VALUE_CHARS,
    ContentTemplate,
    Escape,
    OnMissing,
    Placeholder,
    TemplateError,
    parse_template,
)

NAMES = ["first_name", "tier", "city", "page.path"]
values = st.one_of(
    st.text(max_size=400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.text(max_size=20), max_size=5).map(tuple),
)
contexts = st.dictionaries(st.sampled_from([*NAMES, *(f"profile.{n}" for n in NAMES[:3])]), values, max_size=6)


def test_placeholders_and_defaults() -> None:
    template = parse_template('Hi {{ profile.first_name | default: "there" }}, {{context.city}}{{"{{"}}!')
    assert template.parts == (
        "Hi ",
        Placeholder("profile.first_name", "there"),
        ", ",
        Placeholder("city", None),
        "{{!",
    )
    assert template.render({"city": "Lyon"}, Escape.NONE, OnMissing.BLANK) == "Hi there, Lyon{{!"
    assert template.render({"profile.first_name": "Ana"}, Escape.NONE, OnMissing.SKIP) is None
    both = {"profile.first_name": "Ana", "city": 10.0}
    assert template.render(both, Escape.NONE, OnMissing.SKIP) == "Hi Ana, 10{{!"


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("Hi {{profile.first_name", 24, "'{{' is never closed by '}}'"),
        ("{{ name }}", 4, "expected profile.<name>, context.<name> or a \"string\", found 'name'"),
        ("{{profile.first-name}}", 3, "invalid profile attribute name 'first-name'"),
        ("{{context.profile.tier}}", 3, "invalid context attribute name 'profile.tier'"),
        ("{{profile.x | upper}}", 15, "expected 'default: \"...\"' after '|'"),
        ('{{profile.x | default: "a}}', 28, "unterminated string"),
        ('{{profile.x | default: "a\\n"}}', 27, 'only \\" and \\\\ are escapes'),
        ("{{profile.x | default 'a'}}", 23, "expected ':' after default"),
        ("{{}}", 3, "expected profile.<name>"),
        ("{{profile.x}} {{__import__('os')}}", 17, "expected profile.<name>"),
    ],
)
def test_errors_name_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(TemplateError) as error:
        parse_template(text)
    assert (error.value.column, error.value.reason[: len(reason)]) == (column, reason)


@given(st.text(max_size=200))
def test_parsing_any_text_either_parses_or_says_where(text: str) -> None:
    try:
        template = parse_template(text)
    except TemplateError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    if "{{" not in text:
        assert "".join(p for p in template.parts if isinstance(p, str)) == text


templates = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30),
        st.builds(
            lambda name, default: "{{" + name + (f' | default: "{default}"' if default is not None else "") + "}}",
            st.sampled_from([f"context.{n}" for n in NAMES] + [f"profile.{n}" for n in NAMES[:3]]),
            st.one_of(st.none(), st.text(alphabet="abc <>&'", max_size=10)),
        ),
    ),
    max_size=8,
).map("".join)


@given(templates, contexts, st.sampled_from(list(Escape)), st.sampled_from(list(OnMissing)))
def test_rendering_never_raises_and_is_bounded(text: str, context: dict, escape: Escape, on_missing: OnMissing) -> None:
    template = parse_template(text)
    rendered = template.render(context, escape, on_missing)
    if rendered is None:  # skip: only when a value without a default is missing
        assert on_missing is OnMissing.SKIP
        assert any(p.default is None and context.get(p.key) is None for p in template.placeholders)
        return
    assert len(rendered) <= template.max_length(escape)
    for placeholder in template.placeholders:  # defaults applied
        if context.get(placeholder.key) is None and placeholder.default:
            assert placeholder.default in rendered


@given(st.text(max_size=2 * MAX_VALUE_CHARS))
def test_html_escape_covers_inserted_values_only(value: str) -> None:
    template = parse_template("<p>{{context.city}}</p>")
    rendered = template.render({"city": value}, Escape.HTML, OnMissing.BLANK)
    assert rendered == "<p>" + html.escape(value[:MAX_VALUE_CHARS]) + "</p>"


@given(contexts)
def test_content_renders_to_json_or_skips(context: dict) -> None:
    shape = {"title": parse_template("Hi {{profile.first_name}}"), "n": [1, {"x": parse_template("{{context.city}}")}]}
    content = ContentTemplate(shape, Escape.NONE, OnMissing.SKIP)
    rendered = content.render_json(context)
    missing = content.missing(context)
    assert (rendered is None) == bool(missing)
    assert content.render_json(context, skip=False) is not None  # a fallback is always served
