"""``decision simulate --compare OLD NEW`` and the console's Changes page: on the same profiles, which
placements' winners a new ruleset changes. Pure.

Each profile is decided in every placement the two rulesets share, as ``decision
simulate`` does (one request per placement, no caps); a placement's winners are
the offers of its proposition (the fallback included). ``--fail-on-change RATIO``
makes the command exit 1 when more than that share of the decisions changed (CI).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from decision.core.planning import decide
from decision.core.simulation import Profile, placement_requests, rejected, request_for
from decision.rules.engine import CompiledRuleset

EXAMPLES = 3
Winners = tuple[str, ...]


@dataclass(slots=True)
class PlacementChange:
    placement_id: str
    decisions: int = 0
    changed: int = 0
    moves: Counter[tuple[Winners, Winners]] = field(default_factory=Counter)
    examples: dict[tuple[Winners, Winners], list[str]] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.changed / self.decisions if self.decisions else 0.0


@dataclass(slots=True)
class Comparison:
    old_version: str
    new_version: str
    now: float
    profiles: int = 0
    skipped: list[str] = field(default_factory=list)  # rejected by either ruleset
    placements: dict[str, PlacementChange] = field(default_factory=dict)
    only_old: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()

    @property
    def decisions(self) -> int:
        return sum(p.decisions for p in self.placements.values())

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.placements.values())

    @property
    def share(self) -> float:
        return self.changed / self.decisions if self.decisions else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old_version, "new": self.new_version, "profiles": self.profiles,
            "skipped": len(self.skipped), "decisions": self.decisions, "changed": self.changed, "share": self.share,
            "only_in_old": list(self.only_old), "only_in_new": list(self.only_new),
            "placements": [
                {"placement": p.placement_id, "decisions": p.decisions, "changed": p.changed, "share": p.share,
                 "moves": [{"old": list(old), "new": list(new), "count": n, "examples": p.examples[(old, new)]}
                           for (old, new), n in p.moves.most_common()]}
                for p in self.placements.values()
            ],
        }  # fmt: skip


def compare(old: CompiledRuleset, new: CompiledRuleset, profiles: Iterable[Profile], now: float) -> Comparison:
    old_requests, new_requests = placement_requests(old.ruleset), placement_requests(new.ruleset)
    shared = [p for p in old_requests if p in new_requests]
    result = Comparison(old.ruleset.version, new.ruleset.version, now)
    result.placements = {p: PlacementChange(p) for p in shared}
    result.only_old = tuple(p for p in old_requests if p not in new_requests)
    result.only_new = tuple(p for p in new_requests if p not in old_requests)
    now_ms = int(now * 1000)
    for profile in profiles:
        result.profiles += 1
        refused = rejected(old.ruleset, profile) or rejected(new.ruleset, profile)
        if refused is not None:
            result.skipped.append(refused)
            continue
        before = _winners(old, profile, now, now_ms, shared, old_requests)
        after = _winners(new, profile, now, now_ms, shared, new_requests)
        for placement_id in shared:
            stats = result.placements[placement_id]
            stats.decisions += 1
            move = (before[placement_id], after[placement_id])
            if move[0] != move[1]:
                stats.changed += 1
                stats.moves[move] += 1
                seen = stats.examples.setdefault(move, [])
                if len(seen) < EXAMPLES:
                    seen.append(profile.profile_id)
    return result


def _winners(
    compiled: CompiledRuleset,
    profile: Profile,
    now: float,
    now_ms: int,
    placements: list[str],
    requests: dict[str, Any],
) -> dict[str, Winners]:
    context = request_for(compiled.ruleset, profile, "", ()).context  # as a server's rules see it
    eligible = compiled.eligible(profile.audiences, context, now)
    found: dict[str, Winners] = {}
    for placement_id in placements:
        channel, wanted, _ = requests[placement_id]
        request = request_for(compiled.ruleset, profile, channel, wanted)
        decision = decide(compiled.ruleset, eligible, request, decision_id="sim", now_ms=now_ms)
        found[placement_id] = tuple(item.offer_id for item in decision.propositions[0].items)
    return found


def winners_text(winners: Winners) -> str:
    """A placement's winners in one phrase: ``a + b``, ``(nothing)``."""
    return " + ".join(winners) or "(nothing)"
