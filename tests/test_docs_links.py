"""The Markdown files' relative links lead somewhere: every ``[text](path#anchor)`` of README.md, DEVELOPERS.md,
SECURITY.md and docs/ names a file that exists and, with an anchor, a heading (or an ``<a id>``) of that file,
spelt as GitHub spells heading anchors. docs/README.md, the index of the docs, lists every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")])
FENCED = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(text: str) -> str:
    """The text outside fenced blocks, with fenced lines kept as empty lines (line numbers hold)."""
    return FENCED.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its rendered text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    # A code span shows its text as written; elsewhere emphasis marks and inline HTML show nothing.
    parts = re.split(r"(`+[^`]*`+)", text)
    text = "".join(p.strip("`") if p.startswith("`") else re.sub(r"<[^>]+>|\*", "", p) for p in parts)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = prose(path.read_text(encoding="utf-8"))
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8")))
    problems: list[str] = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if EXTERNAL.match(target):
            continue
        where = f"{shown(page)}:{text.count(chr(10), 0, match.start()) + 1}: {target}"
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{where}: no such file")
        elif anchor and destination.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not Markdown")
        elif anchor and anchor not in anchors(destination):
            problems.append(f"{where}: no heading with this anchor in {shown(destination)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Profile attributes — fields of `ib:m:{<profile_id>}`", "profile-attributes--fields-of-ibmprofile_id"),
        ("Learned ranking: `ranking:` on a placement", "learned-ranking-ranking-on-a-placement"),
        ("The `decision` command: conventions", "the-decision-command-conventions"),
        ("Memory (measured)", "memory-measured"),
        ("Validating: errors, warnings, editors", "validating-errors-warnings-editors"),
    ],
)
def test_anchors_are_spelt_as_github_spells_them(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_broken_links_are_found_and_code_is_not_read(tmp_path: Path) -> None:
    page = tmp_path / "a.md"
    page.write_text(
        "# Title\n## Two words\n## Two words\n"
        "[ok](#two-words) [ok](#two-words-1) [ok](a.md#title) [bad](#three) [bad](b.md) [bad](a.md#title-1)\n"
        "`[code](nowhere.md)` [web](https://example.com/x.md)\n```\n[code](nowhere.md)\n# not a heading\n```\n",
        encoding="utf-8",
    )
    assert [problem.split(": ", 1)[1] for problem in broken_links(page)] == [
        "#three: no heading with this anchor in a.md",
        "b.md: no such file",
        "a.md#title-1: no heading with this anchor in a.md",
    ]


def test_the_index_lists_every_page_of_the_docs() -> None:
    index = prose((ROOT / "docs" / "README.md").read_text(encoding="utf-8"))
    linked = {target.partition("#")[0] for target in LINK.findall(index)}
    pages = {p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert sorted(pages - linked) == []
