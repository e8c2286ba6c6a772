"""Caps, contact policies, offer attributes and score formulas in rulesets: parsed, or located errors (experiments:
test_experiments.py; the full example has one, to show the sections together)."""

from __future__ import annotations

import pytest

from decision.rules.loader import parse
from decision.rules.types import DECISION, CapScope, HoldoutServes, Period, PeriodKind
from tests.decision.rules.parsed import problems

HEAD = """placements:
  - {id: banner, channels: [web], fallback: fb}
offers:
  - {id: fb, placements: [banner]}
"""


def test_a_full_example_parses() -> None:
    text = """settings: {time_zone: Europe/Paris}
attributes: {cart_value: number}
placements:
  - id: banner
    channels: [web]
    max_items: 2
    fallback: fb
    score: "offer.margin * 2 + min(context.cart_value, 100) / 10"
    experiment:
      id: rank-test
      variants: [{id: a, weight: 1}, {id: b, weight: 1, score: "offer.margin"}]
offers:
  - {id: fb, placements: [banner]}
  - id: promo
    placements: [banner]
    attributes: {margin: 12.5}
    caps:
      - {max: 3, period: 24h}
      - {max: 1, period: week}
      - {max: 100, scope: total, period: month, time_zone: UTC, counts: display}
    suppress: {after_dismissals: 2, for: 7d, within: 30d}
    experiment:
      id: promo-copy
      variants: [{id: control, weight: 3}, {id: short, weight: 1, content: {title: Short}}]
      holdout: {weight: 1, serves: nothing}
contact_policies:
  - {id: daily, channels: [web], placements: [banner], max: 5, period: day}
"""
    ruleset, found = parse(text.encode(), "r.yaml")
    assert ruleset is not None, [str(p) for p in found]
    promo = ruleset.offers["promo"]
    assert [(c.max, c.scope, c.period, c.counts) for c in promo.caps] == [
        (3, CapScope.PROFILE, Period(PeriodKind.ROLLING, 86_400), DECISION),
        (1, CapScope.PROFILE, Period(PeriodKind.WEEK, 0, "Europe/Paris"), DECISION),
        (100, CapScope.TOTAL, Period(PeriodKind.MONTH, 0, "UTC"), "impression"),
    ]
    assert promo.suppression is not None and promo.suppression.seconds == 7 * 86_400
    assert promo.experiment is not None and promo.experiment.holdout_serves is HoldoutServes.NOTHING
    assert promo.experiment.variants[1].content_json == '{"title":"Short"}'
    assert promo.attributes == {"margin": 12.5}
    banner = ruleset.placements["banner"]
    assert banner.score is not None and banner.score.offer_refs == {"margin"}
    assert ruleset.contact_policies[0].period == Period(PeriodKind.DAY, 0, "Europe/Paris")


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        ("caps: [{max: 0}]", "r.yaml:7: offers[x].caps[0].max: must be between 1 and 1000, got 0"),
        ("caps: [{max: 2, period: 3w}]", "r.yaml:7: offers[x].caps[0].period: invalid period '3w': expected"),
        ("caps: [{max: 2, period: day, time_zone: Mars/Base}]", "offers[x].caps[0].time_zone: unknown time zone"),
        ("caps: [{max: 2, period: 24h, time_zone: UTC}]", "time zone applies to calendar periods only"),
        ("caps: [{max: 2, scope: total, period: 12h}]", "rolling periods are not available here"),
        ("caps: [{max: 2, scope: everyone}]", "offers[x].caps[0].scope: unknown scope 'everyone'"),
        ("caps: [{max: 2, counts: views}]", "offers[x].caps[0].counts: unknown event 'views'"),
        ("caps: [{max: 2, per: day}]", "offers[x].caps[0].per: unknown field"),
        ("suppress: {after_dismissals: 2}", "offers[x].suppress.for: required field is missing"),
        ("suppress: {after_dismissals: 2, for: soon}", "offers[x].suppress.for: invalid duration 'soon'"),
        ("attributes: {margin: high}", "offers[x].attributes.margin: must be a number, got str 'high'"),
    ],
)
def test_located_errors_in_offers(offer: str, expected: str) -> None:
    text = HEAD + f"  - id: x\n    placements: [banner]\n    {offer}\n"
    found = problems(text)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ('score: "offer.margin +"', "r.yaml:3: placements[banner].score: column 15: expected a number"),
        ('score: "context.device * 2"', "placements[banner].score: context.device is declared string"),
        ('score: "context.nope"', "placements[banner].score: unknown attribute context.nope"),
        ('score: "offer.nope"', "placements[banner].score: offer.nope: no offer of placement 'banner' has this"),
        (
            'experiment: {id: e, variants: [{id: a, weight: 1, score: "1 +"}]}',
            "placements[banner].experiment.variants[0].score: column 4",
        ),
    ],
)
def test_located_errors_in_placements(placement: str, expected: str) -> None:
    text = f"""attributes: {{device: string}}
placements:
  - {{id: banner, channels: [web], fallback: fb, {placement}}}
offers:
  - {{id: fb, placements: [banner]}}
  - {{id: x, placements: [banner], attributes: {{margin: 1}}}}
"""
    found = problems(text)
    assert any(expected in p for p in found), found


def test_a_block_formula_error_names_its_own_line() -> None:
    text = """placements:
  - id: banner
    channels: [web]
    fallback: fb
    score: |
      offer.margin * 2
      + )
offers:
  - {id: fb, placements: [banner], attributes: {margin: 1}}
"""
    assert any(p.startswith("r.yaml:7: placements[banner].score: column 3: expected a number") for p in problems(text))


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        ("- {id: p, max: 3}", "contact_policies[p]: needs channels, placements, or both"),
        ("- {id: p, channels: [fax], max: 3}", "contact_policies[p].channels[0]: unknown channel 'fax'"),
        ("- {id: p, placements: [nope], max: 3}", "contact_policies[p].placements[0]: unknown placement 'nope'"),
        ("- {id: p, channels: [web], max: 3, counts: dismiss}", "counts messages, not dismissals"),
        ("- {id: p, channels: [web]}", "contact_policies[0].max: required field is missing"),
        ("- {id: p, channels: [web], max: 1}\n  - {id: p, channels: [web], max: 2}", "duplicate policy id 'p'"),
    ],
)
def test_located_errors_in_contact_policies(policies: str, expected: str) -> None:
    found = problems(HEAD + "contact_policies:\n  " + policies + "\n")
    assert any(expected in p for p in found), found


def test_unknown_settings_time_zone() -> None:
    found = problems("settings: {time_zone: Nowhere/City}\n" + HEAD)
    assert any("r.yaml:1: settings.time_zone: unknown time zone 'Nowhere/City'" in p for p in found)


def test_no_tie_warning_where_a_score_formula_ranks_equal_priorities() -> None:
    from decision.rules.lint import equal_priority_overlaps

    def ties(score: str) -> list[str]:
        text = f"""placements:
  - {{id: banner, channels: [web], fallback: fb{score}}}
offers:
  - {{id: fb, placements: [banner], priority: -1}}
  - {{id: a, placements: [banner], priority: 5, attributes: {{margin: 1}}}}
  - {{id: b, placements: [banner], priority: 5, attributes: {{margin: 2}}}}
"""
        ruleset, found = parse(text.encode(), "r.yaml")
        assert ruleset is not None, found
        return [str(p) for p in equal_priority_overlaps(ruleset, 0.0)]

    assert len(ties("")) == 1
    assert ties(', score: "offer.margin"') == []
