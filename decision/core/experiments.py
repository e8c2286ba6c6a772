"""Experiment assignment: deterministic from (experiment id, profile id), uniform over the weights. Pure.

An ``allocation: auto`` experiment keeps the holdout by weight (the same
hash), and gives everybody else the variant they saw before (sticky: stored
in the profile's counters hash when an impression of it is recorded), else the
variant with the highest Thompson draw (decision.core.learning), else — while
a variant has fewer exposures than the minimum — the variant by weight.

The 64-bit BLAKE2b digest of ``experiment id NUL profile id`` picks a point
in [0, total weight): the holdout group takes the first ``holdout_weight``
points, then each variant its ``weight`` in the order written. Every replica
computes the same assignment with no shared state, across restarts and
releases; a different experiment id reshuffles profiles independently.
Changing the weights moves only the profiles whose point changes group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from decision.core.counters import STICKY_PREFIX
from decision.core.learning import Learner
from decision.rules.types import Allocation, Experiment, Variant


def point(experiment_id: str, profile_id: str, total: int) -> int:
    """A point in [0, total), uniform over profiles (bias below total / 2**64)."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{profile_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") * total) >> 64


def assign(experiment: Experiment, profile_id: str) -> Variant | None:
    """The profile's variant, or None when it falls in the holdout group."""
    spot = point(experiment.id, profile_id, experiment.total_weight)
    if spot < experiment.holdout_weight:
        return None
    spot -= experiment.holdout_weight
    for variant in experiment.variants:
        if spot < variant.weight:
            return variant
        spot -= variant.weight
    raise AssertionError("a point beyond the total weight")  # unreachable: point < total


def choose(
    experiment: Experiment, profile_id: str, sticky: Mapping[str, str], learner: Learner | None
) -> Variant | None:
    """The profile's variant (None: its holdout group), for experiments allocated by weight or automatically."""
    weighted = assign(experiment, profile_id)
    if experiment.allocation is not Allocation.AUTO or weighted is None:
        return weighted
    seen = sticky.get(experiment.id)
    if seen is not None:
        kept = next((v for v in experiment.variants if v.id == seen and v.weight > 0), None)
        if kept is not None:
            return kept
    learned = None if learner is None else learner.variant(experiment)
    return weighted if learned is None else learned[0]


def split_sticky(raw: Mapping[bytes, bytes]) -> tuple[dict[bytes, bytes], dict[str, str]]:
    """A counters hash as read: (the counter fields, experiment id -> the variant the profile saw)."""
    prefix = STICKY_PREFIX.encode()
    counters: dict[bytes, bytes] = {}
    sticky: dict[str, str] = {}
    for name, value in raw.items():
        if name.startswith(prefix):
            sticky[name[len(prefix) :].decode()] = value.decode()
        else:
            counters[name] = value
    return counters, sticky
