"""The console's templates escape every value unless it is markup they built."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from decision.console.markup import Html, html, join, link, table, text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.data: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def parsed(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


@given(st.text())
def test_a_value_is_text_in_an_element_and_in_an_attribute(value: str) -> None:
    page = html('<p title="{}">{}</p>', value, value)
    found = parsed(page)
    assert found.tags == ["p"]  # no element, whatever the value holds
    assert found.attributes == [("title", value)]
    assert "".join(found.data) == value


def test_markup_built_here_is_put_in_as_is_and_only_it() -> None:
    cell = html("<b>{}</b>", "<script>x</script>")
    assert str(html("<td>{}</td>", cell)) == "<td><b>&lt;script&gt;x&lt;/script&gt;</b></td>"
    assert str(html("<td>{}</td>", "<b>")) == "<td>&lt;b&gt;</td>"
    assert str(html("{:>5}", "<")) == "    &lt;"
    assert str(join(["<", Html("<br>"), 1])) == "&lt;<br>1"
    assert text(Html("<i>")) == "<i>"
    assert str(link("/profile", "<x>", {"id": 'a"&b'})) == '<a href="/profile?id=a%22%26b">&lt;x&gt;</a>'
    rows = table(["a<"], [["<td>"]])
    assert "<th>a&lt;</th>" in rows and "<td>&lt;td&gt;</td>" in rows
