"""docs/rules.md's examples, as written.

Every ``yaml`` block of the page is a whole ruleset. One followed by a ``text`` block that starts with
``$ decision validate rules.yaml`` is run through that command, whose output must be the block's (errors or
warnings shown on purpose); every other one must be accepted by the loader and the engine's compiler without
a problem, draw no ``validate`` warning, and pass the JSON Schema editors use. Each section of the language has
an example, and the contents list every section.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from decision.rules.compiler import compile_ruleset
from decision.rules.lint import lint
from decision.rules.loader import parse
from tests.decision.rules.test_schema import _document, schema_errors

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "rules.md"
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
VALIDATE = "$ decision validate rules.yaml"
# Sections that describe the language as a whole rather than one part of it.
WITHOUT_EXAMPLE = ("Contents", "Names and limits", "How rules are evaluated")
# The warnings of a ruleset depend on the moment (ended schedules): the examples are judged at a fixed one.
NOW = datetime(2026, 11, 15, 12, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Example:
    line: int
    text: str
    shown: tuple[str, ...] | None  # what `decision validate` prints for it, when the page shows that

    def __str__(self) -> str:
        return f"docs/rules.md:{self.line}"


def examples(page: str) -> list[Example]:
    blocks = [(page.count("\n", 0, m.start()) + 2, m.group(1), m.group(2)) for m in FENCE.finditer(page)]
    found: list[Example] = []
    for index, (line, language, text) in enumerate(blocks):
        if language != "yaml":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        shown = None
        if following is not None and following[1] == "text" and following[2].startswith(VALIDATE + "\n"):
            shown = tuple(following[2].splitlines()[1:])
        found.append(Example(line, text, shown))
    return found


EXAMPLES = examples(PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.shown is None], ids=str)
def test_the_example_is_a_valid_ruleset(example: Example) -> None:
    ruleset, problems = parse(example.text.encode(), str(example))
    assert ruleset is not None, "\n".join(map(str, problems))
    assert problems == []
    compile_ruleset(ruleset)  # raises RulesetInvalid with what the engine refuses
    assert [str(p) for p in lint(ruleset, now=NOW)] == []
    assert schema_errors(_document(example.text)) == []


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.shown is not None], ids=str)
def test_validate_prints_what_the_page_shows(example: Example, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(example.text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "decision.cli", "validate", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = (result.stdout + result.stderr).splitlines()
    assert printed == list(example.shown or ()), f"{example}: the page shows other lines than the command prints"
    assert result.returncode == (1 if any(" error(s)" in line for line in printed) else 0)


def sections(page: str) -> dict[str, str]:
    """The text under each ``## `` heading, fenced blocks included."""
    parts = re.split(r"^## (.+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_section_of_the_language_has_an_example() -> None:
    page = PAGE.read_text(encoding="utf-8")
    missing = [
        title for title, text in sections(page).items() if title not in WITHOUT_EXAMPLE and "```yaml" not in text
    ]
    assert missing == []
    assert len(EXAMPLES) >= 20, "the page lost its examples"


def test_the_contents_list_every_section() -> None:
    page = PAGE.read_text(encoding="utf-8")
    found = sections(page)
    listed = re.findall(r"^- \[(.+?)\]\(#", found["Contents"], flags=re.MULTILINE)
    assert listed == [title for title in found if title != "Contents"]
