"""What profile attributes and content templates add to a decision's CPU, as ratios to a baseline.

Pure, in this process, no Redis: the costs they add are Python's.

* ``decode``: reading a profile hash of 10 memberships (the audiences) vs the same hash with 6
  attributes, audiences and attributes decoded (``AudienceDirectory.audiences`` + ``.attributes``).
* ``plan``: ``decision.core.planning.decide`` for 3 proposed offers with static content vs the same
  offers whose content holds two placeholders (rendered per decision), vs ``profile.*`` conditions'
  join of the profile to the context (``with_profile``) added.

Usage: ``python -m loadtest.personalization_cost [--rounds 20000]``. Compare the ratios, not the times
(shared, noisy machines).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from decision.core.planning import decide
from decision.core.requests import with_profile
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules.loader import parse
from inbound_common.codecs import AudienceDirectory, AudienceEntry

STATIC = "{title: 'Hi there, 10 % off in Lyon today', cta: Shop}"
TEMPLATED = """{title: 'Hi {{profile.first_name | default: "there"}}, 10 % off in {{context.city}} today', cta: Shop}"""


def ruleset_text(content: str) -> bytes:
    offers = "".join(f"  - {{id: o{i}, placements: [p], content: {content}}}\n" for i in range(3))
    return f"""
profile_attributes: {{first_name: string, tier: string}}
attributes: {{city: string}}
placements:
  - {{id: p, channels: [web], max_items: 3, fallback: fb}}
offers:
  - {{id: fb, placements: [p], priority: -1}}
{offers}""".encode()


def per_call(function: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds

    entries = {f"a{i}": AudienceEntry(f"a{i}", i, 1) for i in range(1, 11)}
    directory = AudienceDirectory.build(1, entries)
    memberships = {f"{i}:1".encode(): b"" for i in range(1, 11)}
    attributes = {
        b"@tier": b"s1780000000000|gold",
        b"@ltv": b"n1780000000000|1234.5",
        b"@vip": b"b1780000000000|1",
        b"@first_name": b"s1780000000000|Ana",
        b"@last_order": b"t1780000000000|1780000000.0",
        b"@stores": b'l1780000000000|["lyon","paris"]',
    }
    with_attributes = {**memberships, **attributes}
    base = per_call(lambda: directory.audiences(memberships, 0.0), rounds)
    both = per_call(lambda: (directory.audiences(with_attributes, 0.0), directory.attributes(with_attributes)), rounds)
    print(
        f"decode  memberships only {base * 1e6:6.2f} us   + 6 attributes {both * 1e6:6.2f} us   ratio {both / base:.2f}"
    )

    static, _ = parse(ruleset_text(STATIC), "static.yaml")
    templated, _ = parse(ruleset_text(TEMPLATED), "templated.yaml")
    assert static is not None and templated is not None
    eligible = {f"o{i}": f"o{i}" for i in range(3)}
    request = DecisionRequest("p1", "web", (PlacementRequest("p"),), {"city": "Lyon"})
    profile = {"first_name": "Ana", "tier": "gold"}

    def plan(ruleset: object, join: bool) -> Callable[[], object]:
        def run() -> object:
            wanted = with_profile(templated, request, profile) if join else request
            return decide(ruleset, eligible, wanted, decision_id="d", now_ms=0)  # type: ignore[arg-type]

        return run

    cases = [plan(static, False), plan(templated, False), plan(templated, True)]
    best = [float("inf")] * len(cases)
    for _ in range(3):  # interleaved: a noisy neighbour slows one round of every case, not one case
        best = [min(b, per_call(case, rounds // 8)) for b, case in zip(best, cases, strict=True)]
    plain, rendered, joined = best
    print(
        f"plan    static {plain * 1e6:6.2f} us   templated {rendered * 1e6:6.2f} us (ratio {rendered / plain:.2f})"
        f"   + profile joined {joined * 1e6:6.2f} us (ratio {joined / plain:.2f})"
    )


if __name__ == "__main__":
    main()
