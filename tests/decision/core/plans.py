"""Hypothesis strategies for rulesets with delivery controls, experiments and multi-item placements.

Offers are eligible by audience: offer ``oN`` needs audience ``aN`` (or nothing),
so a profile's memberships choose the eligible set, over gRPC as in pure tests.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

from decision.core.counters import offer_counter_field, policy_counter_field

NOW_MS = 1_780_000_000_000
PLACEMENTS = ("p", "q")
PROFILES = tuple(f"u{i}" for i in range(8))
PERIODS = ("day", "24h", "lifetime")


@st.composite
def experiments(draw: st.DrawFn, experiment_id: str) -> dict[str, Any]:
    # Holdouts weigh a lot: most profiles are held out, the case under test.
    return {
        "id": experiment_id,
        "variants": [{"id": "v", "weight": draw(st.integers(1, 2))}],
        "holdout": {"weight": draw(st.integers(1, 4)), "serves": draw(st.sampled_from(["fallback", "nothing"]))},
    }


@st.composite
def offers(draw: st.DrawFn, index: int, *, controls: bool) -> dict[str, Any]:
    offer: dict[str, Any] = {
        "id": f"o{index}",
        "placements": draw(st.lists(st.sampled_from(PLACEMENTS), min_size=1, max_size=2, unique=True)),
        "priority": draw(st.integers(-1, 2)),
        "attributes": {"margin": draw(st.integers(0, 3))},
    }
    if draw(st.booleans()):
        offer["eligibility"] = {"audiences": {"all": [f"a{index}"]}}
    if draw(st.integers(0, 2)) == 0:
        offer["experiment"] = draw(experiments(f"e{index}"))
    if controls:
        caps = []
        if draw(st.booleans()):
            counts = draw(st.sampled_from(["decision", "impression"]))
            caps.append({"max": draw(st.integers(1, 2)), "period": draw(st.sampled_from(PERIODS)), "counts": counts})
        if draw(st.integers(0, 3)) == 0:
            caps.append({"max": draw(st.integers(1, 3)), "scope": "total", "period": "lifetime"})
        if caps:
            offer["caps"] = caps
        if draw(st.integers(0, 3)) == 0:
            offer["suppress"] = {"after_dismissals": draw(st.integers(1, 2)), "for": "1d"}
    return offer


@st.composite
def documents(draw: st.DrawFn, *, controls: bool = True) -> str:
    """A valid ruleset as YAML text: two placements of up to 3 items sharing one fallback."""
    fallback: dict[str, Any] = {
        "id": "fb",
        "placements": list(PLACEMENTS),
        "priority": draw(st.integers(-2, 2)),
        "attributes": {"margin": 1},
    }
    if draw(st.booleans()):  # a fallback that is also eligible as an ordinary offer
        fallback["eligibility"] = {"audiences": {"all": ["nobody"]}}
    placements = []
    for placement_id in PLACEMENTS:
        placement: dict[str, Any] = {
            "id": placement_id,
            "channels": ["web"],
            "max_items": draw(st.integers(1, 3)),
            "fallback": "fb",
        }
        if draw(st.booleans()):
            placement["score"] = "offer.margin"
        if draw(st.integers(0, 4)) == 0:
            placement["experiment"] = draw(experiments(f"pe_{placement_id}"))
        placements.append(placement)
    document: dict[str, Any] = {
        "settings": {"allow_duplicate_propositions": draw(st.booleans())},
        "placements": placements,
        "offers": [fallback] + [draw(offers(i, controls=controls)) for i in range(draw(st.integers(1, 6)))],
    }
    if controls and draw(st.booleans()):
        document["contact_policies"] = [
            {
                "id": "daily",
                "placements": draw(st.lists(st.sampled_from(PLACEMENTS), min_size=1, max_size=2, unique=True)),
                "max": draw(st.integers(1, 4)),
                "period": "day",
                "counts": draw(st.sampled_from(["decision", "impression"])),
            }
        ]
    return yaml.safe_dump(document, sort_keys=False)


def counter_fields(document: str) -> list[str]:
    """Every profile counter field the ruleset can read."""
    parsed = yaml.safe_load(document)
    fields = [
        offer_counter_field(o["id"], counted)
        for o in parsed["offers"]
        for counted in ("decision", "impression", "dismiss")
    ]
    return fields + [policy_counter_field(p["id"]) for p in parsed.get("contact_policies", ())]


@st.composite
def counters(draw: st.DrawFn, fields: list[str]) -> dict[str, tuple[int, ...]]:
    """Latest event times per field, ascending, within the last two days."""
    result = {}
    for name in fields:
        times = draw(st.lists(st.integers(NOW_MS - 2 * 86_400_000, NOW_MS), max_size=3))
        if times:
            result[name] = tuple(sorted(times))
    return result


def audiences_of(document: str) -> list[str]:
    return [f"a{i}" for i in range(len(yaml.safe_load(document)["offers"]))]
