"""What asking why costs planning: a decision planned lazily (no explain) and fully (explain), as a ratio.

Pure planning, no Redis: one placement of 3 items among ``--offers`` eligible
offers, every other one capped by the profile's counters. Without explain the
planner ranks first and looks at delivery controls only until the placement is
filled; with explain it looks at every offer and words a verdict for each.

Usage: ``python -m loadtest.explain_cost [--offers 60]``. Prints the best of 5
runs per decision and the ratio (machines here are shared and noisy: compare ratios).
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from decision.core.controls import DeliveryControls
from decision.core.planning import Why, build_plan, fill, render
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules.loader import parse

NOW_MS = 1_780_000_000_000


def planner(offers: int, explain: bool) -> Callable[[], object]:
    lines = [
        f"  - {{id: o{i}, placements: [a], priority: {i % 5}" + (", caps: [{max: 2, period: day}]}" if i % 2 else "}")
        for i in range(offers)
    ]
    document = "placements: [{id: a, channels: [web], max_items: 3, fallback: fb}]\noffers:\n"
    document += "  - {id: fb, placements: [a], priority: -9}\n" + "\n".join(lines) + "\n"
    rules, problems = parse(document.encode(), "bench.yaml")
    assert rules is not None, problems
    controls = DeliveryControls.build(rules)
    eligible = dict.fromkeys(rules.offers, "r")
    request = DecisionRequest("p", "web", (PlacementRequest("a"),), {}, "r", explain)
    counters = {f"o|o{i}|decision": (NOW_MS - 1000, NOW_MS - 500) for i in range(1, offers, 2)}
    why = Why(frozenset(), NOW_MS / 1000) if explain else None

    def decide() -> object:
        plan = build_plan(rules, eligible, request, now_ms=NOW_MS, controls=controls, counters=counters, why=why)
        return render(plan, fill(plan, counters), rules, request, decision_id="d")

    return decide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=60)
    args = parser.parse_args()
    times = {}
    for name, explain in (("lazy", False), ("explain", True)):
        times[name] = min(timeit.repeat(planner(args.offers, explain), number=500, repeat=5)) / 500
        print(f"{name:8} {times[name] * 1e6:8.1f} us per decision")
    print(f"explain / lazy: {times['explain'] / times['lazy']:.1f}x")


if __name__ == "__main__":
    main()
