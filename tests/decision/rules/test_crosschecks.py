"""Checks across sections (decision/rules/crosschecks.py): fallbacks, unique experiment ids, formula attributes."""

from __future__ import annotations

import pytest

from tests.decision.rules.parsed import problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "placements: [{id: p, channels: [web], fallback: fallbak}]\noffers: [{id: fallback, placements: [p]}]\n",
            "r.yaml:1: placements[p].fallback: fallback offer 'fallbak' does not exist (did you mean 'fallback'?)",
        ),
        (
            "placements: [{id: p, channels: [web], fallback: f}, {id: q, channels: [web], fallback: f}]\n"
            "offers: [{id: f, placements: [p]}]\n",
            "placements[q].fallback: fallback offer 'f' does not list placement 'q'",
        ),
        (
            "placements: [{id: p, channels: [web], fallback: f}]\n"
            "offers: [{id: f, placements: [p], suppress: {after_dismissals: 1, for: 1d}}]\n",
            "offers[f].suppress: a fallback offer is always served: it cannot be capped, suppressed or experimented on",
        ),
        (
            "placements: [{id: p, channels: [web], fallback: f}]\n"
            "offers: [{id: f, placements: [p], experiment: {id: e, variants: [{id: v, weight: 1}]}}]\n",
            "offers[f].experiment: a fallback offer is always served",
        ),
        (
            'placements: [{id: p, channels: [web], fallback: f, score: "offer.margin"}]\n'
            "offers: [{id: f, placements: [p], attributes: {price: 1}}]\n",
            "placements[p].score: offer.margin: no offer of placement 'p' has this attribute",
        ),
    ],
)
def test_mistakes_across_sections_are_located(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_fallbacks_cannot_be_capped_and_experiment_ids_are_unique() -> None:
    text = """placements:
  - {id: banner, channels: [web], fallback: fb, experiment: {id: e, variants: [{id: v, weight: 1}]}}
offers:
  - {id: fb, placements: [banner], caps: [{max: 1}]}
  - {id: a, placements: [banner], experiment: {id: e, variants: [{id: v, weight: 1}]}}
  - {id: b, placements: [banner], experiment: {id: e, variants: [{id: v, weight: 1}]}}
"""
    found = problems(text)
    assert "r.yaml:4: offers[fb].caps: a fallback offer is always served: it cannot be capped" in found[0]
    assert any("r.yaml:6: offers[b].experiment.id: experiment id 'e' is also used at r.yaml:5" in p for p in found)
    assert any("r.yaml:2: placements[banner].experiment.id: experiment id 'e' is also used at r.yaml:5" in p
               for p in found)  # fmt: skip
