"""docs/outcomes.md's sample report is what ``decision report`` prints for the counters it describes: the page
cannot drift from the command (a new column or line shows up here first)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from decision.cli.outcomes_text import format_report
from decision.core.outcomes import OutcomeRow
from decision.core.report import build
from decision.rules.types import Experiment, HoldoutServes, Location, Variant

PAGE = Path(__file__).resolve().parents[1] / "docs" / "outcomes.md"
INTRO = "On 6,000 decisions with simulated clicks"
DAY = "2026-11-20"
# offer, variant, proposals, impressions, clicks, dismissals: one day of the banner-ranking experiment.
COUNTERS = [
    ("house_ad", "holdout", 1937, 1737, 20, 44),
    ("premium_upgrade", "by_margin", 2030, 1822, 236, 60),
    ("spring_sale", "by_file", 2033, 1842, 139, 62),
]
EXPERIMENT = Experiment(
    "banner-ranking", (Variant("by_file", 1), Variant("by_margin", 1)), 1, HoldoutServes.FALLBACK, Location("r.yaml", 1)
)


def rows() -> Iterator[OutcomeRow]:
    for offer, variant, proposals, impressions, clicks, dismissals in COUNTERS:
        for counted, count in [
            ("decision", proposals), ("impression", impressions), ("click", clicks), ("dismiss", dismissals)
        ]:  # fmt: skip
            yield OutcomeRow(DAY, offer, "v1", "home_banner", "banner-ranking", variant, counted, count)


def page_sample() -> str:
    text = PAGE.read_text(encoding="utf-8")
    begin = text.index("```\n", text.index(INTRO)) + 4
    return text[begin : text.index("```\n", begin)]


def test_the_pages_sample_is_the_commands_output() -> None:
    report = build(rows(), (DAY,), experiments={EXPERIMENT.id: EXPERIMENT})
    assert page_sample() == format_report(report).rstrip("\n") + "\n"
