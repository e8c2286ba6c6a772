"""Generate a realistic ruleset of M offers over A audiences, for benchmarks and load tests.

Offers mix the rule language's features as marketing rulesets do: audience
requirements and exclusions, context conditions, schedules, several placements.
Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

PLACEMENTS = (
    ("home_banner", ("web", "mobile"), 1),
    ("cart_upsell", ("web", "mobile"), 2),
    ("app_inbox", ("mobile",), 3),
    ("product_page", ("web",), 2),
)
CATEGORIES = ("sneakers", "apparel", "outdoor", "kids", "beauty", "home", "electronics", "sports")
DEVICES = ("ios", "android", "desktop")


def audience_id(index: int) -> str:
    return f"aud-{index:04d}"


def _condition(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"{{context.cart_value: {{ge: {rng.choice((20, 50, 100, 150, 250))}}}}}"
    if kind == 1:
        return f"{{context.device: {{in: [{', '.join(rng.sample(DEVICES, 2))}]}}}}"
    if kind == 2:
        return f"{{context.cart_categories: {{contains: {rng.choice(CATEGORIES)}}}}}"
    if kind == 3:
        return f"{{context.page_path: {{starts_with: /{rng.choice(CATEGORIES)}}}}}"
    if kind == 4:
        return "{context.logged_in: {eq: true}}"
    return f"{{or: [{{context.visits_30d: {{gt: {rng.randrange(1, 10)}}}}}, {{context.cart_value: {{lt: 10}}}}]}}"


def generate(offers: int, audiences: int, seed: int = 1, *, caps: bool = False) -> str:
    rng = random.Random(seed)
    lines = [
        f"version: generated-{offers}-offers",
        "attributes: {cart_value: number, cart_categories: list, device: string, page_path: string, "
        "logged_in: bool, visits_30d: number}",
        "placements:",
    ]
    for placement, channels, max_items in PLACEMENTS:
        lines.append(
            f"  - {{id: {placement}, channels: [{', '.join(channels)}], max_items: {max_items}, "
            f"fallback: fallback_{placement}}}"
        )
    lines.append("offers:")
    for placement, _, _ in PLACEMENTS:
        lines.append(
            f"  - {{id: fallback_{placement}, placements: [{placement}], priority: -1, content: {{kind: fallback}}}}"
        )
    for index in range(offers):
        placements = rng.sample([p for p, _, _ in PLACEMENTS], rng.choice((1, 1, 2)))
        picked = rng.sample(range(audiences), 4)
        audiences_yaml = f"any: [{', '.join(audience_id(a) for a in picked[: rng.randrange(1, 4)])}]"
        if rng.random() < 0.3:
            audiences_yaml += f", none: [{audience_id(picked[3])}]"
        conditions = ", ".join(_condition(rng) for _ in range(rng.randrange(0, 3)))
        conditions_yaml = f", conditions: [{conditions}]" if conditions else ""
        schedule = ""
        if rng.random() < 0.2:
            schedule = ', schedule: {start: "2026-01-01T00:00:00Z", end: "2030-01-01T00:00:00Z"}'
        capping = ""
        if caps and index % 10 == 0:  # a frequency cap per profile, counted on decision
            capping = ", caps: [{max: 3, period: 1d}]"
        elif caps and index % 25 == 1:  # a daily budget across profiles
            capping = ", caps: [{max: 1000000, scope: total, period: day}]"
        lines.append(
            f"  - {{id: offer_{index:04d}, placements: [{', '.join(placements)}], "
            f"priority: {rng.randrange(100)}{capping}, "
            f'content: {{title: "Offer {index}", link: "/o/{index}"}}, '
            f"eligibility: {{audiences: {{{audiences_yaml}}}{conditions_yaml}{schedule}}}}}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--caps", action="store_true", help="cap some offers (per profile and total)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(generate(args.offers, args.audiences, args.seed, caps=args.caps))


if __name__ == "__main__":
    main()
